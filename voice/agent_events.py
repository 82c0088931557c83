"""Server-sent events for one agent: their Redis channel (screen pops) and their live presence, pushed."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from redis import Redis, RedisError

from directo.core.states import AgentStatus
from routing.events import agent_channel
from routing.presence import Presence

logger = logging.getLogger(__name__)

# One web thread per connected agent: a bounded stream hands the thread back and lets the browser reconnect.
LIFETIME_SECONDS = 55.0
HEARTBEAT_SECONDS = 15.0
RETRY_MS = 2000
# Presence changes (a call ending, wrap-up) are not published, so the stream looks at the agent's state this often.
POLL_SECONDS = 0.5


def live_state(presence: Presence, identity: str, now: float | None = None) -> dict[str, Any]:
    """The agent's presence as the page shows it: a wrap-up that has run out is already over."""
    state = presence.state(identity)
    now = time.time() if now is None else now
    status = state.get("status") or AgentStatus.OFFLINE
    until = float(state.get("until") or 0) if status == AgentStatus.WRAPUP else None
    if until is not None and until <= now:
        status, until = AgentStatus.AVAILABLE, None
    return {"status": status, "call": state.get("call") or None, "until": until}


def stream(redis: Redis, presence: Presence, identity: str, lifetime: float = LIFETIME_SECONDS) -> Iterator[str]:
    """Yield SSE frames until `lifetime` runs out, then tell the page to reconnect at once (no error shown)."""
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(agent_channel(identity))
        yield f"retry: {RETRY_MS}\n\n"
        started = last_beat = time.monotonic()
        shown: dict[str, Any] | None = None
        while time.monotonic() - started < lifetime:
            state = live_state(presence, identity)
            if state != shown:
                shown = state
                yield _frame("state", {**state, "server_time": time.time()})
            message = pubsub.get_message(timeout=POLL_SECONDS)
            if message is not None:
                data = message["data"]
                yield _frame("message", None, data.decode() if isinstance(data, bytes) else str(data))
                last_beat = time.monotonic()
            elif time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                yield ": heartbeat\n\n"
                last_beat = time.monotonic()
        yield _frame("reconnect", {})
    except (RedisError, OSError, ValueError):
        # Redis gone, or its connection closed under us as the app shuts down: the browser sees the stream end,
        # shows the banner and retries. Honest, and no thread is held.
        logger.warning("event stream for %s lost Redis", identity)
    finally:
        pubsub.close()


def _frame(event: str, payload: dict[str, Any] | None, raw: str | None = None) -> str:
    data = raw if raw is not None else json.dumps(payload)
    name = "" if event == "message" else f"event: {event}\n"
    return f"{name}data: {data}\n\n"
