"""What an agent's page shows of their presence: one shape, whether the page asks for it or it is pushed."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from directo.core.states import AgentStatus as Status
from routing.presence import Presence


def shown_state(raw: Mapping[str, Any], now: float | None = None) -> dict[str, Any]:
    """The agent's presence as the page shows it: a wrap-up that has run out is already over.

    `raw` is the agent's presence hash, or a state change as routing.presence publishes it; `v` (Redis's clock
    when it changed) lets the page drop a state older than one it has shown.
    """
    now = time.time() if now is None else now
    status = raw.get("status") or Status.OFFLINE
    until = float(raw.get("until") or 0) if status == Status.WRAPUP else None
    if until is not None and until <= now:
        status, until = Status.AVAILABLE, None
    return {"status": str(status), "call": raw.get("call") or None, "until": until, "v": int(raw.get("v") or 0),
            "server_time": now}


def live_state(presence: Presence, identity: str) -> dict[str, Any]:
    return shown_state(presence.state(identity))
