"""The callback policy alone: promises and assignment are pure, tested without Redis or a database."""

import pytest

from routing.callback_policy import FreeAgent, QueuedCallback, assign, promise_minutes

WINDOW = 300.0


@pytest.mark.parametrize(
    ("ahead", "agents", "handling", "expected"),
    [
        (0, 4, 240.0, 5),  # first in line, a free agent soon: the shortest promise
        (8, 2, 240.0, 20),  # 240 * (0.5 + 4) = 18 min → 20
        (100, 2, 240.0, 15),  # a long queue is capped at the configured promise
        (0, 0, None, 5),  # nobody on duty and no history: still a bounded promise
        (3, 1, None, 20),  # no history: 5-minute handlings assumed → 17.5 min, rounded up to 20
    ],
)
def test_promise_is_honest_and_capped(ahead, agents, handling, expected) -> None:
    cap = 15 if expected <= 15 else 60
    assert promise_minutes(ahead, agents, handling, cap) == expected


def cb(id_: int, queued: float, lang: str = "es", preferred: str | None = None, due: float | None = None,
       exclusive_until: float | None = None):
    """A call-back is kept for its caller's previous agent for WINDOW after it is queued, unless told otherwise."""
    return QueuedCallback(id_, lang, queued, queued if due is None else due, preferred,
                          queued + WINDOW if exclusive_until is None else exclusive_until)


def agent(identity: str, idle_since: float, *langs: str) -> FreeAgent:
    return FreeAgent(identity, langs or ("es",), idle_since)


def test_oldest_due_callback_goes_to_the_longest_idle_agent() -> None:
    pairs = assign([agent("bea", 50.0), agent("ana", 10.0)], [cb(2, 200.0), cb(1, 100.0)], 1000.0)
    assert pairs == [(1, "ana"), (2, "bea")]


def test_language_must_match() -> None:
    assert assign([agent("tom", 1.0, "en")], [cb(1, 100.0, "es")], 1000.0) == []


def test_preferred_agent_alone_may_take_it_during_the_window() -> None:
    callbacks = [cb(1, 900.0, preferred="bea")]
    assert assign([agent("ana", 1.0)], callbacks, 1000.0) == []
    assert assign([agent("ana", 1.0)], callbacks, 900.0 + WINDOW) == [(1, "ana")]
    assert assign([agent("ana", 1.0), agent("bea", 2.0)], callbacks, 1000.0) == [(1, "bea")]


def test_an_agent_takes_their_own_callers_first() -> None:
    pairs = assign([agent("bea", 1.0)], [cb(1, 100.0), cb(2, 900.0, preferred="bea")], 1000.0)
    assert pairs == [(2, "bea")]


def test_callbacks_not_yet_due_wait() -> None:
    assert assign([agent("ana", 1.0)], [cb(1, 100.0, due=2000.0)], 1000.0) == []


def test_one_callback_one_agent() -> None:
    pairs = assign([agent("ana", 1.0), agent("bea", 2.0), agent("carla", 3.0)], [cb(1, 100.0)], 1000.0)
    assert pairs == [(1, "ana")]


def test_a_promise_waits_for_its_owner_through_the_grace_window_then_anyone_may_keep_it() -> None:
    promise = cb(7, 100.0, preferred="ana", due=5000.0, exclusive_until=5600.0)  # due at 5000, 10 minutes' grace
    assert assign([agent("bea", 1.0)], [promise], 4000.0) == [], "not due yet"
    assert assign([agent("bea", 1.0)], [promise], 5000.0) == [], "due: only its owner may take it"
    assert assign([agent("bea", 1.0), agent("ana", 2.0)], [promise], 5000.0) == [(7, "ana")]
    assert assign([agent("bea", 1.0)], [promise], 5600.0) == [(7, "bea")], "the owner missed it: another agent"
