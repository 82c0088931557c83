"""The routing policy alone: a pure function, no Redis, no database."""

from routing.policy import AgentState, CallerProfile, Snapshot, rank_agents


def idle(identity: str, since: float, *langs: str) -> AgentState:
    return AgentState(identity, "available", since, langs or ("es",))


def test_previous_agent_beats_longer_idle_agents() -> None:
    snapshot = Snapshot(previous=idle("bea", 500.0), idle=(idle("ana", 100.0), idle("bea", 500.0)))
    assert rank_agents(snapshot, CallerProfile("es", "bea")) == ["bea", "ana"]


def test_busy_previous_agent_falls_back_to_longest_idle() -> None:
    snapshot = Snapshot(
        previous=AgentState("bea", "busy", 0.0, ("es",)),
        idle=(idle("carla", 300.0), idle("ana", 100.0)),
    )
    assert rank_agents(snapshot, CallerProfile("es", "bea")) == ["ana", "carla"]


def test_only_agents_speaking_the_callers_language() -> None:
    snapshot = Snapshot(previous=None, idle=(idle("ana", 100.0, "es"), idle("tom", 50.0, "en")))
    assert rank_agents(snapshot, CallerProfile("en")) == ["tom"]


def test_agents_already_tried_on_this_call_are_skipped() -> None:
    snapshot = Snapshot(previous=idle("bea", 1.0), idle=(idle("ana", 100.0), idle("bea", 1.0)))
    assert rank_agents(snapshot, CallerProfile("es", "bea", frozenset({"bea"}))) == ["ana"]


def test_nobody_free_gives_no_candidate() -> None:
    assert rank_agents(Snapshot(previous=None), CallerProfile("es", "bea")) == []


def test_ties_in_idle_time_are_broken_by_identity_for_determinism() -> None:
    snapshot = Snapshot(previous=None, idle=(idle("zoe", 10.0), idle("ana", 10.0)))
    assert rank_agents(snapshot, CallerProfile("es")) == ["ana", "zoe"]
