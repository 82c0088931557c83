"""Callback decisions as pure functions: how long to promise, and which free agent takes which callback."""

from __future__ import annotations

import math
from dataclasses import dataclass

# Promises are spoken in steps a person remembers ("within 10 minutes"), never to the second.
PROMISE_STEP_MINUTES = 5
# What a call takes when there is no history yet (talk plus wrap-up), so a new center does not over-promise.
DEFAULT_HANDLING_SECONDS = 300.0


def promise_minutes(ahead: int, agents_on_duty: int, handling_seconds: float | None, cap_minutes: int) -> int:
    """An honest estimate of when we will call: the queue ahead shared among the agents who could take it.

    The caller in position `ahead + 1` waits, on average, for that many handlings spread over the agents,
    plus half a handling for the first of them to come free. Rounded up to a whole step, never above the cap.
    """
    handling = handling_seconds if handling_seconds and handling_seconds > 0 else DEFAULT_HANDLING_SECONDS
    agents = max(agents_on_duty, 1)
    seconds = handling * (0.5 + ahead / agents)
    minutes = math.ceil(seconds / 60 / PROMISE_STEP_MINUTES) * PROMISE_STEP_MINUTES
    return max(PROMISE_STEP_MINUTES, min(minutes, cap_minutes))


@dataclass(frozen=True)
class QueuedCallback:
    id: int
    language: str
    queued_at: float
    due_at: float
    preferred_agent: str | None = None
    # Until then only the preferred agent may take it (their own caller, or their own promise).
    exclusive_until: float = 0.0


@dataclass(frozen=True)
class FreeAgent:
    identity: str
    languages: tuple[str, ...]
    idle_since: float


def assign(agents: list[FreeAgent], callbacks: list[QueuedCallback], now: float) -> list[tuple[int, str]]:
    """(callback id, agent) pairs: longest-idle agents choose first; each takes the oldest due callback it may.

    An agent first takes a callback that is theirs (a caller they served last, as for inbound calls; a promise
    they made); such a callback is kept for that agent alone until its exclusive window ends, after which anyone
    who speaks the caller's language may take it.
    """
    due = sorted((c for c in callbacks if c.due_at <= now), key=lambda c: (c.queued_at, c.id))
    taken: set[int] = set()
    pairs: list[tuple[int, str]] = []
    for agent in sorted(agents, key=lambda a: (a.idle_since, a.identity)):
        own = [c for c in due if c.id not in taken and c.preferred_agent == agent.identity]
        others = [
            c
            for c in due
            if c.id not in taken
            and c.language in agent.languages
            and (c.preferred_agent in (None, agent.identity) or now >= c.exclusive_until)
        ]
        choice = (own or others or [None])[0]
        if choice is not None:
            taken.add(choice.id)
            pairs.append((choice.id, agent.identity))
    return pairs
