"""Server-sent event frames, and the ASGI messages that open, feed and refuse a stream."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]

# A comment line: proxies and load balancers that cut idle connections see traffic, the page sees nothing.
HEARTBEAT = b": heartbeat\n\n"
# Not buffered by a reverse proxy (nginx honours X-Accel-Buffering), never cached.
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache, no-store"),
    (b"x-accel-buffering", b"no"),
]


def frame(data: Any, *, event: str | None = None, event_id: str | None = None) -> bytes:
    """One event: `data` as JSON (a str is sent as it is), named `event` (else the page's "message")."""
    text = data if isinstance(data, str) else json.dumps(data)
    head = (f"id: {event_id}\n" if event_id else "") + (f"event: {event}\n" if event else "")
    return f"{head}data: {text}\n\n".encode()


def retry(milliseconds: int) -> bytes:
    return f"retry: {milliseconds}\n\n".encode()


async def start(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})


async def body(send: Send, data: bytes, *, more: bool = True) -> None:
    await send({"type": "http.response.body", "body": data, "more_body": more})


async def refuse(send: Send, status: int, error: str) -> None:
    """A stream that cannot be opened answers as the pages' JSON endpoints do: the page's script says why."""
    payload = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"cache-control", b"no-store")]})
    await body(send, payload, more=False)
