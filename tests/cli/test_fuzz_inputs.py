"""Property-based fuzzing of the user-input parsers: whatever they are given, they answer with
a result or a Fleetwright error (one line), never with another exception.

Bounded: each property runs a fixed number of examples with no deadline, so the time the
suite takes does not depend on the machine's load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetwright.errors import FleetwrightError

FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text that favours what breaks parsers: separators, digits, unicode oddities.
_ALPHABET = st.sampled_from(
    list(":@/,#\"'\\ \t[]{}=.-_|%\n")
    + list("0123456789")
    + list("abchpsx")
    + ["\u200b", "\u00a0", "\ufeff", "\u202e", "é", "\x00", "ß"]
)
_TEXTISH = st.text(alphabet=_ALPHABET, max_size=200) | st.text(max_size=200)


def _one_line(exc: FleetwrightError) -> None:
    assert exc.message and "\n" not in exc.message.strip(), exc.message


@FUZZ
@given(lines=st.lists(_TEXTISH, max_size=8))
def test_proxy_lines_never_raise(lines: list[str]) -> None:
    from fleetwright.proxies.parse import parse_proxies

    result = parse_proxies("\n".join(lines))
    for spec in result.proxies:
        assert 1 <= spec.port <= 65535 and spec.host
    for number, reason in result.problems:
        assert number >= 1 and "\n" not in reason


@FUZZ
@given(data=st.binary(max_size=400) | _TEXTISH.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_proxy_file_never_raises(tmp_path: Path, data: bytes) -> None:
    from fleetwright.proxies.parse import parse_proxy_file

    path = tmp_path / "proxies.txt"
    path.write_bytes(data)
    try:
        parse_proxy_file(path)
    except FleetwrightError as exc:
        _one_line(exc)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXTISH,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["name", "tags", "fingerprint", "timezone", "locale", "proxy"])
            | _TEXTISH,
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@FUZZ
@given(
    data=st.binary(max_size=300)
    | _JSON.map(lambda v: json.dumps(v).encode())
    | st.lists(_JSON, max_size=3).map(lambda v: json.dumps(v).encode())
)
def test_profile_import_never_raises(tmp_path: Path, data: bytes) -> None:
    """What `profile import` does before it writes: read the file, validate every item."""
    from fleetwright.cli.profile import read_import_file
    from fleetwright.specs import validate_profile

    path = tmp_path / "profiles.json"
    path.write_bytes(data)
    try:
        items = read_import_file(path)
    except FleetwrightError as exc:
        _one_line(exc)
        return
    for where, item in items:
        if not isinstance(item, dict):
            continue
        try:
            validate_profile(item, where=where)
        except FleetwrightError as exc:
            _one_line(exc)


_STEP = st.dictionaries(
    st.sampled_from(["goto", "click", "fill", "extract", "assert", "python", "wait_for", "x"]),
    _JSON,
    min_size=1,
    max_size=2,
)
_COMMAND = st.fixed_dictionaries(
    {},
    optional={
        "name": _TEXTISH | st.just("fz"),
        "version": _TEXTISH | st.just("1"),
        "params": _JSON,
        "steps": st.lists(_STEP | _JSON, max_size=4),
        "python": _TEXTISH,
        "timeout": _JSON,
    },
)


@FUZZ
@given(
    data=_COMMAND.map(lambda d: json.dumps(d).encode())  # JSON is YAML
    | st.binary(max_size=300)
    | _TEXTISH.map(lambda t: t.encode("utf-8", "surrogatepass"))
)
def test_command_loader_never_raises(tmp_path: Path, data: bytes) -> None:
    from fleetwright.commands.loader import _check_python_refs
    from fleetwright.commands.parsing import read_command_file

    path = tmp_path / "fz.yaml"
    path.write_bytes(data)
    try:
        spec = read_command_file(path)
        _check_python_refs(spec, path)
    except FleetwrightError as exc:
        _one_line(exc)


_TEMPLATE = st.lists(
    st.sampled_from(
        ["{{", "}}", " ", "params", "profile", "steps", "name", ".", "|", "x", "0", "[", "]"]
    )
    | _TEXTISH,
    max_size=10,
).map("".join)


@FUZZ
@given(template=_TEMPLATE, value=_JSON)
def test_template_parser_never_raises(template: str, value: Any) -> None:
    from fleetwright.commands.parsing import parse_command
    from fleetwright.commands.templating import find_references, render

    try:
        find_references(template)
        render(template, {"params": {"x": value}, "profile": {"name": "p"}, "steps": {}})
    except FleetwrightError as exc:
        _one_line(exc)
    data = {
        "name": "fz",
        "version": "1",
        "params": {"x": {"type": "str", "default": "d"}},
        "steps": [{"goto": template}, {"fill": {"selector": template, "value": template}}],
    }
    try:
        parse_command(data, where="fz.yaml")
    except FleetwrightError as exc:
        _one_line(exc)


@pytest.mark.parametrize("port", ["9" * 1_000_000, "1" * 5000, "٣٣", "¹²", "+80", " 80"])
def test_port_conversion_is_bounded(port: str) -> None:
    """Ports from any source are checked as short ASCII digits before int() sees them."""
    from fleetwright.errors import ValidationError
    from fleetwright.specs import validate_proxy

    try:
        spec = validate_proxy({"name": "p", "host": "h", "port": port})
    except ValidationError as exc:
        _one_line(exc)
        assert len(exc.message) < 300
    else:
        assert spec.port == 80
