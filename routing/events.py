"""Live events for one agent's screen (screen pop, presence), published in Redis for the agent page to push."""

from __future__ import annotations

import json
import logging
from typing import Any

from redis import Redis, RedisError

logger = logging.getLogger(__name__)


def agent_channel(identity: str, prefix: str = "directo:") -> str:
    return f"{prefix}events:agent:{identity}"


BOARD_CHANNEL = "directo:events:board"


def publish(redis: Redis, identity: str, kind: str, payload: dict[str, Any]) -> None:
    """Best effort by design: the TwiML <Parameter>s carry the same context, so a lost event loses no call."""
    message = json.dumps({"type": kind, "agent": identity, **payload})
    try:
        pipe = redis.pipeline(transaction=False)
        pipe.publish(agent_channel(identity), message)
        pipe.publish(BOARD_CHANNEL, message)
        pipe.execute()
    except RedisError:
        logger.warning("could not publish %s for %s", kind, identity)
