"""Keeping secrets out of messages: collect a block's secret values and scrub text of them."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, SecretStr

__all__ = ["Scrubber", "secret_values"]


def secret_values(model: BaseModel) -> list[str]:
    """Every SecretStr value set on `model` (e.g. a credentials block)."""
    values: list[str] = []
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        if isinstance(value, SecretStr) and value.get_secret_value():
            values.append(value.get_secret_value())
    return values


class Scrubber:
    """Replaces known secret values (and their long lines, e.g. PEM bodies) with `***`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if len(secret) >= 4:
                self._secrets.add(secret)
                self._secrets.update(
                    line.strip() for line in secret.splitlines() if len(line.strip()) >= 16
                )

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "***")
        return text
