"""Live events for one agent's screen (screen pops), kept briefly and published in Redis for their open pages.

An agent's channel carries three kinds of message, each a JSON object: `{"id", "event"}` for what the page shows
(kept in a short per-agent log, so a page that was reconnecting replays what it missed), `{"state"}` for a
presence change (published by routing.presence's scripts) and `{"close", "reason"}` for the web edge's own
control of open streams.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from redis import Redis, RedisError

logger = logging.getLogger(__name__)

PREFIX = "directo:"
# Long enough for any page to come back from a reconnect; the page asks for the current call anyway.
LOG_LENGTH = 32
LOG_SECONDS = 3600

# KEYS: the agent's log, their channel. ARGV: the event (JSON), log length, log lifetime (ms).
# The id is the log entry's: increasing per agent, so a page can say "after this one" when it reconnects.
_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'event', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', KEYS[2], '{"id":"' .. id .. '","event":' .. ARGV[1] .. '}')
return id
"""


def agent_channel(identity: str, prefix: str = PREFIX) -> str:
    return f"{prefix}events:agent:{identity}"


def agent_log(identity: str, prefix: str = PREFIX) -> str:
    return f"{prefix}events:log:{identity}"


def publish(redis: Redis, identity: str, kind: str, payload: dict[str, Any]) -> None:
    """Best effort by design: the TwiML <Parameter>s carry the same context, so a lost event loses no call."""
    message = json.dumps({"type": kind, "agent": identity, **payload})
    try:
        redis.register_script(_PUBLISH)(keys=[agent_log(identity), agent_channel(identity)],
                                        args=[message, LOG_LENGTH, LOG_SECONDS * 1000])
    except RedisError:
        logger.warning("could not publish %s for %s", kind, identity)
