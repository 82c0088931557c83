"""Routing at the edge: read a snapshot, let the pure policy rank, reserve atomically, retry if beaten."""

from __future__ import annotations

from dataclasses import dataclass

from routing.policy import CallerProfile, rank_agents
from routing.presence import Presence, Reserved

# Each retry reads a fresh snapshot; three is plenty because each lost race means another caller got someone.
_RACES = 3


@dataclass(frozen=True)
class Routed:
    agent: Reserved | None
    promoted: tuple[str, ...] = ()


def route(presence: Presence, call_sid: str, caller: CallerProfile, now: float) -> Routed:
    promoted: list[str] = []
    for _ in range(_RACES):
        snapshot, due = presence.snapshot(caller.language, caller.previous_agent, now)
        promoted.extend(due)
        ranked = rank_agents(snapshot, caller)
        if not ranked:
            break
        chosen = presence.reserve(call_sid, ranked, now)
        if chosen:
            return Routed(chosen, tuple(promoted))
    return Routed(None, tuple(promoted))
