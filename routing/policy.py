"""The routing decision as a pure function: no I/O, so the policy is tested without Redis or a database."""

from __future__ import annotations

from dataclasses import dataclass, field

from directo.core.states import AgentStatus


@dataclass(frozen=True)
class AgentState:
    identity: str
    status: str
    idle_since: float
    languages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    """What the router saw: the caller's previous agent (if any) and the longest-idle agents for a language."""

    previous: AgentState | None
    idle: tuple[AgentState, ...] = ()


@dataclass(frozen=True)
class CallerProfile:
    language: str
    previous_agent: str | None = None
    tried: frozenset[str] = field(default_factory=frozenset)


def rank_agents(snapshot: Snapshot, caller: CallerProfile) -> list[str]:
    """Agents to try in order: the caller's previous agent when free, then the longest idle who speak their language.

    The previous agent wins even over agents idle for longer: known-agent routing saves the caller
    from repeating themselves, which is the point of Directo. Agents already tried on this call are skipped.
    """
    ranked: list[str] = []
    previous = snapshot.previous
    if previous is not None and previous.status == AgentStatus.AVAILABLE and previous.identity not in caller.tried:
        ranked.append(previous.identity)
    for agent in sorted(snapshot.idle, key=lambda a: (a.idle_since, a.identity)):
        if (
            agent.status == AgentStatus.AVAILABLE
            and caller.language in agent.languages
            and agent.identity not in caller.tried
            and agent.identity not in ranked
        ):
            ranked.append(agent.identity)
    return ranked
