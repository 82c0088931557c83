"""A complaint's steps against its state machine: any sequence and any race ends where the machine says, each step
that happened is one audit entry and the chain holds; steps that do not apply change nothing and say why; a caller
with an open complaint reaches its owner. Real databases (SQLite and PostgreSQL), real threads."""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from test_incoming import add, client_identity, complete_call, parameters

from directo.core.models import Agent, AuditEntry, Call, Callback, Complaint, Customer, utcnow
from directo.core.states import CallbackKind, CallbackState, ToldVia
from directo.core.states import ComplaintState as S
from recordings import audit, complaints
from recordings.complaints import flag
from recordings.errors import ComplaintError, NotAllowed, NotFound, WrongState
from routing import agents as admin
from routing import complaint_life, roster
from routing.complaint_life import Actor

ANA, BEA = Actor("ana"), Actor("bea")
SUE = Actor("sue", supervisor=True)
LATER = utcnow() + timedelta(days=15)
# step -> (states it applies in, state after it, extra condition on the row)
MACHINE: dict[str, tuple[set[S], S | None]] = {
    "assign": ({S.RECEIVED, S.RESOLVED, S.TOLD, S.REOPENED}, None),
    "resolve": ({S.RECEIVED, S.REOPENED}, S.RESOLVED),
    "told": ({S.RESOLVED}, S.TOLD),
    "accept": ({S.TOLD}, S.TOLD),  # once: only while no answer is recorded
    "refuse": ({S.TOLD}, S.REOPENED),
    "satisfied": ({S.TOLD}, S.CLOSED),
    "not-satisfied": ({S.TOLD}, S.REOPENED),
}
_CALLS = itertools.count(1)


def new_complaint(services, agent: str = "ana", phone: str | None = "+34600111222",
                  summary: str = "No funciona") -> int:
    """A complaint flagged on an answered call of `agent`'s."""
    sid = f"CA{next(_CALLS):030d}"
    with services.db.session() as session:
        agent_id = session.scalar(select(Agent.id).where(Agent.identity == agent))
        customer_id = None
        if phone is not None:
            customer_id = session.scalar(select(Customer.id).where(Customer.phone == phone))
            if customer_id is None:
                customer = Customer(phone=phone, language="es", answered_calls=1)
                session.add(customer)
                session.flush()
                customer_id = customer.id
        session.add(Call(call_sid=sid, language="es", caller=phone, customer_id=customer_id, agent_id=agent_id,
                         started_at=utcnow(), answered_at=utcnow()))
    return flag(services, sid, agent, summary=summary).complaint_id


@pytest.fixture
def staff(services) -> None:
    for identity in ("ana", "bea"):
        roster.add_agent(services, identity, identity.title(), ["es"])
    roster.add_agent(services, "sue", "Sue", ["es"], role="supervisor")


def _step(session, name: str, complaint_id: int, owner_id: int) -> bool:
    complaint = session.get(Complaint, complaint_id)
    moves: dict[str, Callable[[], bool]] = {
        "assign": lambda: complaints.assign(session, complaint, owner_id, previous_owner_id=complaint.owner_id,
                                            by="sue", reason="holidays", owner="x"),
        "resolve": lambda: complaints.resolve(session, complaint, explanation="e", remedy="r", cause="c", by="ana",
                                              now=utcnow()),
        "told": lambda: complaints.told(session, complaint, via=ToldVia.CALL, by="ana", now=utcnow()),
        "accept": lambda: complaints.answer(session, complaint, accepted=True, note="", by="ana", reopen_due=LATER,
                                            now=utcnow()),
        "refuse": lambda: complaints.answer(session, complaint, accepted=False, note="", by="ana",
                                            reopen_due=LATER, now=utcnow()),
        "satisfied": lambda: complaints.verify(session, complaint, satisfied=True, note="", by="ana",
                                               reopen_due=LATER, now=utcnow()),
        "not-satisfied": lambda: complaints.verify(session, complaint, satisfied=False, note="", by="ana",
                                                   reopen_due=LATER, now=utcnow()),
    }
    return moves[name]()


def _state(services, complaint_id: int) -> tuple[str, bool | None, int]:
    with services.db.session() as session:
        row = session.execute(select(Complaint.state, Complaint.remedy_accepted, Complaint.reopened_count)
                              .where(Complaint.id == complaint_id)).one()
        return row.state, row.remedy_accepted, row.reopened_count


def _entries(services, complaint_id: int) -> int:
    with services.db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.complaint_id == complaint_id))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(sorted(MACHINE)), min_size=1, max_size=12))
def test_any_sequence_of_steps_ends_where_the_machine_says(services, staff, steps) -> None:
    complaint_id = new_complaint(services)
    with services.db.session() as session:
        bea = session.scalar(select(Agent.id).where(Agent.identity == "bea"))
    state, answered, reopened, happened = S.RECEIVED, False, 0, 0
    for name in steps:
        applies, after = MACHINE[name]
        expected = state in applies and not (name in ("accept", "refuse") and answered)
        with services.db.session() as session:
            owner = bea if name != "assign" or happened % 2 else session.scalar(select(Agent.id).where(
                Agent.identity == "ana"))
            assert _step(session, name, complaint_id, owner) == expected, (name, state)
        if expected:
            happened += 1
            if name == "told":
                answered = False
            if name in ("accept", "refuse"):
                answered = True
            if after is not None:
                state = after
            reopened += after == S.REOPENED
        assert _state(services, complaint_id)[0] == state
    assert _state(services, complaint_id)[2] == reopened
    assert _entries(services, complaint_id) == 1 + happened, "one audit entry per step that happened, no more"
    with services.db.session() as session:
        assert audit.verify(session).intact


def _together(calls: list[Callable[[], object]]) -> list[object]:
    """Run the calls in threads released at the same instant: each one's result, or the exception it raised."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except ComplaintError as error:
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _won(results: list[object]) -> list[dict]:
    lost = [r for r in results if isinstance(r, ComplaintError)]
    assert all(isinstance(r, WrongState) for r in lost), lost
    return [r for r in results if isinstance(r, dict)]


def test_people_acting_on_one_complaint_at_once_one_wins_the_others_are_told(services, staff) -> None:
    complaint_id = new_complaint(services)
    reference = _reference(services, complaint_id)

    def resolve(by: Actor, remedy: str) -> Callable[[], object]:
        return lambda: complaint_life.resolve(services, reference, explanation="Cobro doble.", remedy=remedy,
                                              cause="La pasarela reintenta.", by=by)

    results = _together([resolve(ANA, f"ana {n}") for n in range(3)] + [resolve(SUE, f"sue {n}") for n in range(3)])
    [winner] = _won(results)
    assert all(f"{reference} is resolved: only a complaint that is received or reopened can be resolved"
               in str(r) for r in results if isinstance(r, WrongState))
    with services.db.session() as session:
        stored = session.get(Complaint, complaint_id)
        assert stored.remedy == winner["remedy"], "the winner's words, not a mix"
        told_calls = session.scalars(select(Callback).where(Callback.complaint_id == complaint_id)).all()
        assert [c.kind for c in told_calls] == [CallbackKind.COMPLAINT_TOLD], "one explanation call owed, not six"
        events = [e.event for e in audit.entries(session, complaint_id)]
        assert events.count("complaint-resolved") == 1

    results = _together([lambda: complaint_life.record_answer(services, reference, accepted=True, note="", by=ANA),
                         lambda: complaint_life.record_answer(services, reference, accepted=False, note="", by=SUE)])
    [answer] = _won(results)
    assert _state(services, complaint_id)[0] == (S.TOLD if answer["remedy_accepted"] else S.REOPENED)
    if not answer["remedy_accepted"]:  # the refusal won: resolve again and tell again, to reach a verdict
        complaint_life.resolve(services, reference, explanation="e", remedy="r", cause="c", by=ANA)
        complaint_life.record_answer(services, reference, accepted=True, note="", by=ANA)

    results = _together([functools.partial(complaint_life.verify, services, reference, satisfied=satisfied, note="",
                                            by=SUE) for satisfied in (True, False, True, False)])
    [verdict] = _won(results)
    assert _state(services, complaint_id)[0] == (S.CLOSED if verdict["satisfied"] else S.REOPENED)
    with services.db.session() as session:
        events = [e.event for e in audit.entries(session, complaint_id)]
        assert events.count("complaint-closed") + events.count("complaint-reopened") == 1
        assert audit.verify(session).intact


def _reference(services, complaint_id: int) -> str:
    with services.db.session() as session:
        return session.get(Complaint, complaint_id).reference


def test_steps_that_do_not_apply_change_nothing_and_say_why(services, staff) -> None:
    complaint_id = new_complaint(services)
    reference = _reference(services, complaint_id)
    before = _entries(services, complaint_id)
    refusals: list[tuple[Callable[[], object], type[ComplaintError], str]] = [
        (lambda: complaint_life.verify(services, reference, satisfied=True, note="", by=SUE), WrongState,
         f"{reference} is received: only a complaint that is told can be verified"),
        (lambda: complaint_life.record_answer(services, reference, accepted=True, note="", by=SUE), WrongState,
         "only a complaint that is resolved or told can be given the customer's answer"),
        (lambda: complaint_life.resolve(services, reference, explanation="e", remedy="r", cause="c", by=BEA),
         NotAllowed, f"{reference} is ana's: only its owner or a supervisor can resolve it"),
        (lambda: complaint_life.resolve(services, reference, explanation=" ", remedy="r", cause="c", by=ANA),
         ComplaintError, "write what went wrong, in words for the customer"),
        (lambda: complaint_life.resolve(services, reference, explanation="e" * 401, remedy="r", cause="c", by=ANA),
         ComplaintError, "is 401 characters long; keep it to 400"),
        (lambda: complaint_life.resolve(services, "R-1999-000001", explanation="e", remedy="r", cause="c", by=SUE),
         NotFound, "no complaint R-1999-000001"),
        (lambda: complaint_life.assign(services, reference, "bea", "vacaciones", ANA), NotAllowed,
         "only a supervisor can reassign a complaint"),
        (lambda: complaint_life.assign(services, reference, "bea", "  ", SUE), ComplaintError,
         "write a reason for the change"),
        (lambda: complaint_life.assign(services, reference, "ghost", "x", SUE), NotFound, "no active agent 'ghost'"),
        (lambda: complaint_life.assign(services, reference, "ana", "x", SUE), ComplaintError, "is already ana's"),
        (lambda: complaint_life.record_answer(services, reference, accepted=True, note="", by=BEA), NotAllowed,
         "only its owner, a supervisor or an agent who spoke with the customer"),
    ]
    for attempt, kind, message in refusals:
        with pytest.raises(kind) as refused:
            attempt()
        assert message in str(refused.value)
    assert _entries(services, complaint_id) == before and _state(services, complaint_id)[0] == S.RECEIVED

    complaint_life.resolve(services, reference, explanation="e", remedy="r", cause="c", by=ANA)
    complaint_life.record_answer(services, reference, accepted=True, note="", by=ANA)
    complaint_life.verify(services, reference, satisfied=True, note="", by=ANA)
    with pytest.raises(WrongState, match=f"{reference} is closed: only a complaint that is received or reopened"):
        complaint_life.resolve(services, reference, explanation="e", remedy="r", cause="c", by=SUE)
    with pytest.raises(WrongState, match="is closed: only a complaint that is received, resolved, told or reopened"):
        complaint_life.assign(services, reference, "bea", "x", SUE)


def test_reassigned_complaint_takes_its_calls_to_the_new_owner(services, staff) -> None:
    complaint_id = new_complaint(services)
    reference = _reference(services, complaint_id)
    complaint_life.resolve(services, reference, explanation="e", remedy="r", cause="c", by=ANA)
    moved = complaint_life.assign(services, reference, "bea", "Ana está de vacaciones", SUE)
    assert moved["owner"] == "bea"
    with services.db.session() as session:
        [owed] = session.scalars(select(Callback).where(Callback.complaint_id == complaint_id)).all()
        assert owed.preferred_agent.identity == "bea" and owed.state == CallbackState.QUEUED
        entry = [e for e in audit.entries(session, complaint_id) if e.event == "complaint-assigned"]
        assert '"reason":"Ana está de vacaciones"' in entry[0].payload and '"to":"bea"' in entry[0].payload
    with pytest.raises(NotAllowed):  # Ana no longer owns it
        complaint_life.resolve(services, reference, explanation="e", remedy="r", cause="c", by=ANA)


def test_refused_remedy_and_unhappy_customer_reopen_with_a_new_due_date(services, staff) -> None:
    reference = _reference(services, new_complaint(services))
    complaint_life.resolve(services, reference, explanation="e", remedy="Un descuento", cause="c", by=ANA)
    refused = complaint_life.record_answer(services, reference, accepted=False, note="Quiero la devolución", by=ANA)
    assert (refused["state"], refused["remedy_accepted"], refused["reopened_count"]) == ("reopened", False, 1)
    assert refused["next_step"] == "write the resolution" and refused["owner"] == "ana"
    due = utcnow() + timedelta(days=15)
    assert abs((_iso(refused["due_at"]) - due).total_seconds()) < 60
    complaint_life.resolve(services, reference, explanation="e", remedy="La devolución", cause="c", by=ANA)
    accepted = complaint_life.record_answer(services, reference, accepted=True, note="", by=ANA)
    assert accepted["next_call"]["kind"] == CallbackKind.COMPLAINT_FOLLOWUP
    unhappy = complaint_life.verify(services, reference, satisfied=False, note="Sigue sin llegar", by=ANA)
    assert (unhappy["state"], unhappy["satisfied"], unhappy["reopened_count"]) == ("reopened", False, 2)
    assert unhappy["next_call"] is None, "the follow-up asked; nothing else is owed until it is resolved again"
    with services.db.session() as session:
        followups = session.scalars(select(Callback).where(Callback.kind == CallbackKind.COMPLAINT_FOLLOWUP)).all()
        assert [c.state for c in followups] == [CallbackState.CANCELLED]


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_caller_with_an_open_complaint_reaches_its_owner(services, twilio) -> None:
    roster.add_agent(services, "sue", "Sue", ["es"], role="supervisor")
    add(services, "bea")
    add(services, "ana")
    first = twilio.incoming("CA001")
    assert client_identity(first) == "bea", "idle longest"
    complete_call(twilio, first, "CA001", "bea")  # Bea is now the customer's last agent
    reference = _reference(services, new_complaint(services, "ana"))  # flagged on another of Ana's calls

    def both_free_ana_idle_less() -> None:
        admin.set_status(services, "bea", "available")
        admin.set_status(services, "ana", "away")
        admin.set_status(services, "ana", "available")

    both_free_ana_idle_less()
    again = twilio.incoming("CA002")
    assert client_identity(again) == "ana", "its owner: neither the last agent nor the longest idle"
    assert parameters(again)["openComplaints"] == reference
    complete_call(twilio, again, "CA002", "ana")
    complaint_life.assign(services, reference, "bea", "Ana cambia de turno", SUE)
    admin.set_status(services, "ana", "available")
    admin.set_status(services, "bea", "available")  # idle less than Ana, and no longer the last agent
    third = twilio.incoming("CA003")
    assert client_identity(third) == "bea", "the new owner"
    complete_call(twilio, third, "CA003", "bea")
    for step in (lambda: complaint_life.resolve(services, reference, explanation="e", remedy="r", cause="c", by=SUE),
                 lambda: complaint_life.record_answer(services, reference, accepted=True, note="", by=SUE),
                 lambda: complaint_life.verify(services, reference, satisfied=True, note="", by=SUE)):
        step()
    admin.set_status(services, "bea", "available")
    admin.set_status(services, "ana", "away")
    admin.set_status(services, "ana", "available")
    closed = twilio.incoming("CA004")
    assert parameters(closed)["openComplaints"] == ""
    assert client_identity(closed) == "bea", "closed: back to the last agent, as for anyone"


def test_the_complaint_clock_is_configured_in_whole_days(tmp_path) -> None:
    from directo.core.config import Config

    base = {"DIRECTO_DATA_DIR": str(tmp_path), "TWILIO_AUTH_TOKEN": "t", "SECRET_KEY": "s"}
    defaults = Config.from_env(base)
    assert (defaults.complaint_resolution_days, defaults.complaint_followup_days,
            defaults.complaint_owner_minutes) == (15, 7, 60)
    chosen = Config.from_env(base | {"COMPLAINT_RESOLUTION_DAYS": "30", "COMPLAINT_FOLLOWUP_DAYS": "3",
                                     "COMPLAINT_OWNER_MINUTES": "15"})
    assert (chosen.complaint_resolution_days, chosen.complaint_followup_days,
            chosen.complaint_owner_minutes) == (30, 3, 15)
    with pytest.raises(ValueError, match="COMPLAINT_RESOLUTION_DAYS=0: give a whole number of days, 1 or more"):
        Config.from_env(base | {"COMPLAINT_RESOLUTION_DAYS": "0"})
