"""A fake OpenAI Responses API on loopback, answering in the wire format the `openai` SDK parses.

Queue answers with `answer(text)`; without one it echoes the prompt. `base_url` is the
URL to give the SDK (it ends in /v1). Inject 429/5xx with `inject(...)`.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from typing import Any

from fleetwright.testing._fake_server import FakeServer, Reply, Request

__all__ = ["FakeOpenAI"]


class FakeOpenAI(FakeServer):
    """A loopback OpenAI-compatible server accepting `api_key`."""

    def __init__(self, *, api_key: str, host: str = "127.0.0.1") -> None:
        super().__init__(host=host)
        self.api_key = api_key
        self._answers: deque[str] = deque()

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def answer(self, text: str) -> None:
        """The next response's output text (in order)."""
        with self.lock:
            self._answers.append(text)

    def extra_headers(self, request: Request) -> dict[str, str]:
        return {"x-request-id": "req_" + secrets.token_hex(8), "openai-processing-ms": "12"}

    @staticmethod
    def _error(status: int, message: str, code: str | None, kind: str) -> Reply:
        return Reply(
            status, {"error": {"message": message, "type": kind, "param": None, "code": code}}
        )

    def route(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error(
                401, "Incorrect API key provided.", "invalid_api_key", "invalid_request_error"
            )
        if request.path != "/v1/responses" or request.method != "POST":
            return self._error(
                404, f"Unknown route {request.method} {request.path}", None, "invalid_request_error"
            )
        data = request.json()
        with self.lock:
            text = self._answers.popleft() if self._answers else None
        prompt = data.get("input")
        if text is None:
            text = prompt if isinstance(prompt, str) else "ok"
        return Reply(200, self._response(data, text))

    def _response(self, data: dict[str, Any], text: str) -> dict[str, Any]:
        prompt = data.get("input")
        input_tokens = max(1, len(str(prompt)) // 4)
        output_tokens = max(1, len(text) // 4)
        fmt = (data.get("text") or {}).get("format") or {"type": "text"}
        now = int(time.time())
        return {
            "id": "resp_" + secrets.token_hex(12),
            "object": "response",
            "created_at": now,
            "completed_at": now,
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": data.get("instructions"),
            "max_output_tokens": data.get("max_output_tokens"),
            "model": f"{data.get('model', 'gpt-fake')}-2026-01-01",
            "output": [
                {
                    "type": "message",
                    "id": "msg_" + secrets.token_hex(12),
                    "status": "completed",
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                    ],
                }
            ],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": fmt},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            },
            "user": None,
            "metadata": {},
        }
