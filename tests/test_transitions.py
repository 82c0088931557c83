"""The callback's transitions against their state machine: any sequence, and any race, ends where the machine says.

Each transition is one guarded UPDATE; these tests drive random sequences of them (hypothesis) and concurrent
ones (threads on one row) through the real database, and compare with a model of the machine.
"""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from directo.core.models import Call, Callback, utcnow
from directo.core.states import CallbackState as S
from routing import callbacks, roster

NOW = utcnow()
_AGENTS = itertools.count()  # hypothesis runs many examples in one test's database: a new agent each
# transition name -> (states it applies in, state after it); the docstring of routing/callbacks.py draws it.
MACHINE: dict[str, tuple[set[S], S]] = {
    "reserve": ({S.QUEUED}, S.RESERVED),
    "dial": ({S.RESERVED}, S.DIALING),
    "undial": ({S.DIALING}, S.RESERVED),
    "requeue": ({S.RESERVED, S.DIALING}, S.QUEUED),
    "keep": ({S.DIALING}, S.DONE),
    "miss": ({S.DIALING}, S.MISSED),
    "served": ({S.QUEUED, S.RESERVED}, S.DONE),
    "cancel": ({S.QUEUED}, S.CANCELLED),
}


def _apply(session: Session, name: str, callback_id: int, agent_id: int) -> bool:
    moves: dict[str, Callable[[], bool]] = {
        "reserve": lambda: callbacks.reserve(session, callback_id, agent_id, NOW),
        "dial": lambda: callbacks.dial(session, callback_id, NOW),
        "undial": lambda: callbacks.undial(session, callback_id, "refused"),
        "requeue": lambda: callbacks.requeue(session, callback_id, due_at=NOW, error="again"),
        "keep": lambda: callbacks.keep(session, callback_id, NOW),
        "miss": lambda: callbacks.miss(session, callback_id, "no answer", NOW),
        "served": lambda: callbacks.served(session, callback_id, NOW),
        "cancel": lambda: callbacks.cancel(session, callback_id, "sue", "duplicate", NOW),
    }
    return moves[name]()


def _transition(services, name: str, callback_id: int, agent_id: int) -> bool:
    with services.db.session() as session:
        return _apply(session, name, callback_id, agent_id)


def _together(calls: list[Callable[[], bool]]) -> list[bool]:
    """Run the calls in threads released at the same instant; their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[bool | None] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert None not in results, "a contender never finished"
    return [bool(r) for r in results]


def _new_callback(services, phone: str) -> int:
    with services.db.session() as session:
        callback, _ = callbacks.queue(session, services.config, phone=phone, language="es", customer_id=None,
                                      origin_call_id=None, preferred_agent_id=None, now=NOW)
        return callback.id


def _state(services, callback_id: int) -> S:
    with services.db.session() as session:
        return S(session.scalar(select(Callback.state).where(Callback.id == callback_id)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(sorted(MACHINE)), min_size=1, max_size=12))
def test_any_sequence_of_transitions_follows_the_machine(services, steps: list[str]) -> None:
    agent = roster.add_agent(services, f"agent{next(_AGENTS)}", "Agent", ["es"])
    callback_id = _new_callback(services, "+34600000001")
    state = S.QUEUED
    for name in steps:
        allowed, after = MACHINE[name]
        won = _transition(services, name, callback_id, agent.id)
        assert won == (state in allowed), f"{name} from {state}"
        if won:
            state = after
        assert _state(services, callback_id) == state, f"after {name}"


def test_racing_transitions_on_one_callback_let_exactly_one_win(services) -> None:
    """Dispatchers, jobs, webhooks and supervisors at once: every pair that cannot both happen never does."""
    agent = roster.add_agent(services, "ana", "Ana", ["es"])
    for contenders, start in ((["keep", "miss", "requeue"], [("reserve",), ("dial",)]),
                              (["served", "cancel"], []),
                              (["dial", "served"], [("reserve",)])):
        callback_id = _new_callback(services, "+34600000002")
        for (name,) in start:
            assert _transition(services, name, callback_id, agent.id)
        results = _together([functools.partial(_transition, services, name, callback_id, agent.id)
                             for name in contenders for _ in range(3)])
        winners = [name for name, won in zip([n for n in contenders for _ in range(3)], results, strict=True) if won]
        assert len(winners) == 1, (contenders, results)
        assert _state(services, callback_id) == MACHINE[winners[0]][1]


def test_one_callback_adopts_one_call_whoever_hears_of_it_first(services) -> None:
    """The job that placed the call, the sweep asking Twilio after a worker died, and the agent's answer may all
    report a call at once: one call is adopted and logged once; a second call for the callback never is."""
    agent = roster.add_agent(services, "bea", "Bea", ["es"])
    callback_id = _new_callback(services, "+34600000003")
    with services.db.session() as session:
        assert callbacks.reserve(session, callback_id, agent.id, NOW) and callbacks.dial(session, callback_id, NOW)
    def report(sid: str, answered: bool) -> bool:
        with services.db.session() as session:
            callback = session.get(Callback, callback_id)
            return callbacks.adopt(session, callback, sid, agent.id, NOW + timedelta(seconds=1), answered=answered)

    reports = [(sid, answered) for sid in ("CA-first", "CA-second") for answered in (False, True, False, True)]
    results = _together([functools.partial(report, sid, answered) for sid, answered in reports])
    adopted = {sid for (sid, _), won in zip(reports, results, strict=True) if won}
    assert len(adopted) == 1, results
    with services.db.session() as session:
        callback = session.get(Callback, callback_id)
        assert callback.current_call_sid in adopted
        assert session.scalar(select(func.count()).select_from(Call).where(Call.callback_id == callback_id)) == 1
