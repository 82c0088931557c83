"""What people do with a complaint, from the agent page, the console, the CLI or the simulator: reassign it,
resolve it, record whether the customer accepts the remedy, verify it. Each step is the complaint's transition
(recordings/complaints.py) and the calls it owes the customer (callbacks), committed together.

Calls' rows are locked before the complaint's (and the audit chain's) in every path, as the callback webhooks do,
so two steps at the same moment wait for each other instead of deadlocking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from directo.core.models import Agent, Call, Callback, Complaint
from directo.core.services import Services
from directo.core.states import (
    COMPLAINT_OPEN,
    TO_RESOLVE,
    CallbackKind,
    CallbackState,
    ComplaintState,
    ToldVia,
)
from directo.core.unit_of_work import Work, work
from recordings import complaints, register
from recordings.errors import ComplaintError, NotAllowed, NotFound, WrongState
from routing import callbacks
from routing.dispatch import dispatch

# Each day's tries at reaching the customer (CALLBACK_MAX_ATTEMPTS of them) are kept inside this window.
CALL_WINDOW = timedelta(hours=4)
# Who takes a step nobody took by hand (the customer reached, the deadline come).
DIRECTO = "directo"
MAX_EXPLANATION = 400  # the resolution goes by SMS when the customer cannot be reached: one or two sentences
MAX_REMEDY = 300
MAX_CAUSE = 1000
MAX_NOTE = 1000
MAX_REASON = 150


@dataclass(frozen=True)
class Actor:
    """Who takes a step: an agent's identity, and whether they may act on any complaint."""

    identity: str
    supervisor: bool = False


def find(session: Session, reference: str) -> Complaint:
    complaint = session.scalar(select(Complaint).where(Complaint.reference == reference.strip().upper()))
    if complaint is None:
        raise NotFound(f"no complaint {reference}")
    return complaint


def _words(value: str | None, what: str, limit: int, *, required: bool = True) -> str:
    words = " ".join((value or "").split())
    if required and not words:
        raise ComplaintError(f"write {what}")
    if len(words) > limit:
        raise ComplaintError(f"{what} is {len(words)} characters long; keep it to {limit}")
    return words


def _blamed(session: Session, cause: str) -> str | None:
    """The agent a cause names, if any: a cause names a process, never a person to blame."""
    for identity, name in session.execute(select(Agent.identity, Agent.name)):
        for word in (name, identity):
            if len(word) >= 3 and re.search(rf"(?<!\w){re.escape(word)}(?!\w)", cause, re.IGNORECASE):
                return name
    return None


def _owner_or_supervisor(complaint: Complaint, actor: Actor, step: str) -> None:
    if not _owns(complaint, actor):
        raise NotAllowed(f"{complaint.reference} is {_owner_name(complaint)}'s: only its owner or a supervisor can "
                         f"{step} it")


def _owner_name(complaint: Complaint) -> str:
    return complaint.owner.identity if complaint.owner else "nobody"


def _owns(complaint: Complaint, actor: Actor) -> bool:
    return actor.supervisor or (complaint.owner is not None and complaint.owner.identity == actor.identity)


def _with_customer(session: Session, complaint: Complaint, identity: str, *, answered: bool) -> bool:
    """The agent has been put through to this complaint's customer since it was flagged (`answered`: and spoke)."""
    if complaint.customer_id is None:
        return False
    agent_id = select(Agent.id).where(Agent.identity == identity).scalar_subquery()
    where = [Call.customer_id == complaint.customer_id, Call.started_at >= complaint.flagged_at,
             Call.agent_id == agent_id]
    if answered:
        where.append(Call.answered_at.is_not(None))
    return bool(session.scalar(select(exists().where(*where))))


def may_see(session: Session, complaint: Complaint, actor: Actor) -> bool:
    """Its owner, a supervisor, and an agent given a call with its customer or one of its calls to make (the screen
    pop comes before hello, and before a callback's call exists)."""
    mine = select(Agent.id).where(Agent.identity == actor.identity).scalar_subquery()
    return _owns(complaint, actor) or _with_customer(session, complaint, actor.identity, answered=False) or bool(
        session.scalar(select(exists().where(Callback.complaint_id == complaint.id, Callback.agent_id == mine))))


def _spoke_with(session: Session, complaint: Complaint, actor: Actor) -> None:
    """The customer's word may be recorded by the owner, a supervisor, or an agent who spoke with them since."""
    if not _owns(complaint, actor) and not _with_customer(session, complaint, actor.identity, answered=True):
        raise NotAllowed(f"{complaint.reference}: only its owner, a supervisor or an agent who spoke with the "
                         "customer can record what they said")


def owe_call(unit: Work, svc: Services, complaint: Complaint, kind: CallbackKind, *, due: datetime,
             by: str) -> None:
    """A dated call from the complaint's owner (first, for COMPLAINT_OWNER_MINUTES), through the callback queue.

    A withheld number cannot be called: the customer is told when they call in.
    """
    if complaint.phone is None:
        return
    owed = callbacks.schedule(
        unit.session, kind, phone=complaint.phone, language=complaint.language, customer_id=complaint.customer_id,
        owner_id=complaint.owner_id, due_at=due, window=CALL_WINDOW,
        grace=timedelta(minutes=svc.config.complaint_owner_minutes), now=unit.now, about=complaint.remedy,
        complaint_id=complaint.id, origin_call_id=complaint.call_id, created_by=by)
    callbacks.note(unit.session, owed, f"{kind}-owed", {"reference": complaint.reference, "due_at": due.isoformat()},
                   unit.now)
    if due <= unit.now:
        unit.after_commit.append(lambda: dispatch(svc))


def owe_followup(unit: Work, svc: Services, complaint: Complaint, by: str) -> None:
    """COMPLAINT_FOLLOWUP_DAYS after being told, the owner asks whether the remedy worked."""
    owe_call(unit, svc, complaint, CallbackKind.COMPLAINT_FOLLOWUP,
             due=unit.now + timedelta(days=svc.config.complaint_followup_days), by=by)


def withdraw(session: Session, complaint: Complaint, kinds: set[CallbackKind], by: str, why: str,
             now: datetime) -> None:
    """The queued calls of these kinds are no longer owed (the customer was told, or gave their verdict)."""
    for owed in callbacks.owed_for(session, complaint.id, kinds, [CallbackState.QUEUED]):
        if callbacks.cancel(session, owed.id, by, why, now):
            callbacks.note(session, owed, "callback-cancelled", {"by": by, "reason": why}, now)


def _as_now(unit: Work, complaint: Complaint) -> dict[str, Any]:
    """The complaint as the register shows it after the step, read inside the unit that took it."""
    unit.session.flush()
    unit.session.refresh(complaint)
    return register.row(unit.session, complaint, unit.now)


def _reopen_due(svc: Services, now: datetime) -> datetime:
    return now + timedelta(days=svc.config.complaint_resolution_days)


def assign(svc: Services, reference: str, identity: str, reason: str, by: Actor) -> dict[str, Any]:
    """A supervisor gives a complaint to another owner, with a reason; the calls it is owed go with it."""
    if not by.supervisor:
        raise NotAllowed("only a supervisor can reassign a complaint")
    reason = _words(reason, "a reason for the change", MAX_REASON)
    with work(svc.db) as unit:
        complaint = find(unit.session, reference)
        agent = unit.session.scalar(select(Agent).where(Agent.identity == identity, Agent.active.is_(True)))
        if agent is None:
            raise NotFound(f"no active agent {identity!r}")
        if agent.id == complaint.owner_id:
            raise ComplaintError(f"{complaint.reference} is already {identity}'s")
        owed = callbacks.owed_for(unit.session, complaint.id, set(CallbackKind), [CallbackState.QUEUED])
        for callback in owed:
            callbacks.change_owner(unit.session, callback.id, agent.id)
        if not complaints.assign(unit.session, complaint, agent.id, previous_owner_id=complaint.owner_id,
                                 by=by.identity, reason=reason, owner=identity):
            state = unit.session.scalar(select(Complaint.state).where(Complaint.id == complaint.id))
            if state in COMPLAINT_OPEN:
                raise WrongState(f"{complaint.reference} was reassigned by someone else a moment ago: look again")
            raise complaints.refusal(unit.session, complaint.id, "reassigned", COMPLAINT_OPEN)
        unit.after_commit.append(lambda: dispatch(svc))
        return _as_now(unit, complaint)


def resolve(svc: Services, reference: str, *, explanation: str, remedy: str, cause: str, by: Actor) -> dict[str, Any]:
    """The owner (or a supervisor) writes the resolution; the owner then owes the customer a call explaining it."""
    explanation = _words(explanation, "what went wrong, in words for the customer", MAX_EXPLANATION)
    remedy = _words(remedy, "the remedy offered", MAX_REMEDY)
    cause = _words(cause, "the cause, in words for the team", MAX_CAUSE)
    with work(svc.db) as unit:
        complaint = find(unit.session, reference)
        _owner_or_supervisor(complaint, by, "resolve")
        blamed = _blamed(unit.session, cause)
        if blamed is not None:
            raise ComplaintError(f"the cause names {blamed}: name the process that failed, never a person")
        if not complaints.resolve(unit.session, complaint, explanation=explanation, remedy=remedy, cause=cause,
                                  by=by.identity, now=unit.now):
            raise complaints.refusal(unit.session, complaint.id, "resolved", TO_RESOLVE)
        owe_call(unit, svc, complaint, CallbackKind.COMPLAINT_TOLD, due=unit.now, by=by.identity)
        return _as_now(unit, complaint)


def record_answer(svc: Services, reference: str, *, accepted: bool, note: str, by: Actor) -> dict[str, Any]:
    """After (or during) the call that explained the resolution: does the customer accept the remedy?

    The call told them, if nothing had yet: the explanation call still queued is withdrawn. Accepted, a follow-up
    is owed; refused, the complaint goes back to its owner with a new due date.
    """
    note = _words(note, "the customer's words", MAX_NOTE, required=False)
    with work(svc.db) as unit:
        session = unit.session
        complaint = find(session, reference)
        _spoke_with(session, complaint, by)
        newly_told = complaint.state == ComplaintState.RESOLVED
        if newly_told:
            withdraw(session, complaint, {CallbackKind.COMPLAINT_TOLD}, by.identity, "told on a call", unit.now)
            newly_told = complaints.told(session, complaint, via=ToldVia.CALL, by=by.identity, now=unit.now)
        if not complaints.answer(session, complaint, accepted=accepted, note=note, by=by.identity,
                                 reopen_due=_reopen_due(svc, unit.now), now=unit.now):
            state = session.scalar(select(Complaint.state).where(Complaint.id == complaint.id))
            if state == ComplaintState.TOLD:
                raise WrongState(f"{complaint.reference}: the customer's answer is already recorded")
            raise complaints.refusal(session, complaint.id, "given the customer's answer",
                                     {ComplaintState.RESOLVED, ComplaintState.TOLD})
        if not accepted:
            withdraw(session, complaint, {CallbackKind.COMPLAINT_FOLLOWUP}, by.identity, "remedy refused", unit.now)
        elif newly_told:
            owe_followup(unit, svc, complaint, by.identity)
        return _as_now(unit, complaint)


def verify(svc: Services, reference: str, *, satisfied: bool, note: str, by: Actor) -> dict[str, Any]:
    """The follow-up's verdict: satisfied closes the complaint; not satisfied sends it back to its owner."""
    note = _words(note, "the customer's words", MAX_NOTE, required=False)
    with work(svc.db) as unit:
        complaint = find(unit.session, reference)
        _spoke_with(unit.session, complaint, by)
        withdraw(unit.session, complaint, {CallbackKind.COMPLAINT_FOLLOWUP}, by.identity, "verified", unit.now)
        if not complaints.verify(unit.session, complaint, satisfied=satisfied, note=note, by=by.identity,
                                 reopen_due=_reopen_due(svc, unit.now), now=unit.now):
            raise complaints.refusal(unit.session, complaint.id, "verified", {ComplaintState.TOLD})
        return _as_now(unit, complaint)
