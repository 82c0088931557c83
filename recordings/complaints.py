"""A complaint and every way its state changes: the only module that writes `complaints.state` and its owner.

Flagging commits the reference before anything is said or sent, then queues the SMS. Every later step is one
guarded UPDATE (`... WHERE id = :id AND state IN :expected`) with its entry in the hash-chained audit log, in the
same transaction: two people acting on one complaint at once, one wins and the other's step changes nothing.

    received -resolve-> resolved -told-> told -answer(accepted)-> told -verify(satisfied)-> closed
    reopened -resolve-> resolved              -answer(refused)--> reopened <-verify(not satisfied)-
    any open state -assign-> the same state, another owner
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from directo.core.models import Call, CallEvent, Complaint, utcnow
from directo.core.services import Services
from directo.core.states import COMPLAINT_OPEN, TO_RESOLVE, ComplaintState, SmsTopic, ToldVia
from recordings import audit, sms
from recordings.acknowledgement import sms_body
from recordings.errors import ComplaintError, NotAllowed, NotFound, TooEarly, WrongState
from recordings.references import next_reference

MAX_SUMMARY = 2000


@dataclass(frozen=True)
class Flagged:
    complaint_id: int
    reference: str
    call_sid: str
    created: bool  # False: the call already had a complaint, and this is it
    text_id: int | None = None  # the SMS with the reference, written with the complaint


def flag(
    svc: Services,
    call_sid: str,
    flagged_by: str,
    *,
    summary: str = "",
    supervisor: bool = False,
    status_url: str | None = None,
    now: datetime | None = None,
) -> Flagged:
    """One complaint per call: flagging again (a double click, a retry) returns the same reference."""
    summary = (summary or "").strip()
    if len(summary) > MAX_SUMMARY:
        raise ComplaintError(f"the summary is {len(summary)} characters long; at most {MAX_SUMMARY}")
    try:
        flagged = _flag(svc, call_sid, flagged_by, summary, supervisor, now or utcnow())
    except IntegrityError:
        # Two flags of one call at the same moment: the other committed first, and its reference stands.
        flagged = _flag(svc, call_sid, flagged_by, summary, supervisor, now or utcnow())
    if flagged.text_id is not None:
        sms.enqueue_send(svc, flagged.text_id, status_url)
    return flagged


def _flag(svc: Services, call_sid: str, flagged_by: str, summary: str, supervisor: bool, now: datetime) -> Flagged:
    with svc.db.session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is None:
            raise NotFound(f"no call {call_sid}")
        if not supervisor and (call.agent is None or call.agent.identity != flagged_by):
            raise NotAllowed(f"call {call_sid} is not {flagged_by}'s call")
        existing = session.scalar(select(Complaint).where(Complaint.call_id == call.id))
        if existing is not None:
            return Flagged(existing.id, existing.reference, call_sid, created=False)
        if call.answered_at is None:
            raise TooEarly(f"call {call_sid} has not reached a person yet")
        due = now + timedelta(days=svc.config.complaint_resolution_days)
        complaint = Complaint(
            reference=next_reference(session, now.year), call_id=call.id, customer_id=call.customer_id,
            agent_id=call.agent_id, phone=call.caller, language=call.language, summary=summary,
            flagged_by=flagged_by, flagged_at=now, state=ComplaintState.RECEIVED, owner_id=call.agent_id,
            due_at=due, first_due_at=due, reopened_count=0,
        )
        session.add(complaint)
        session.flush()
        audit.append(session, "complaint-flagged", {
            "reference": complaint.reference, "call_sid": call_sid, "flagged_by": flagged_by, "summary": summary,
            "phone": call.caller, "owner": call.agent.identity if call.agent else None, "due_at": due,
        }, complaint.id)
        session.add(CallEvent(call_id=call.id, at=now, kind="complaint-flagged",
                              detail={"reference": complaint.reference, "by": flagged_by}))
        text = sms.compose(session, SmsTopic.COMPLAINT_REFERENCE, complaint.id, complaint.phone,
                           sms_body(complaint.language, complaint.reference), complaint.id) if complaint.phone else None
        return Flagged(complaint.id, complaint.reference, call_sid, created=True, text_id=text.id if text else None)


# --- the life after the reference -------------------------------------------------------------------------------

def _move(session: Session, complaint: Complaint, expected: Iterable[ComplaintState], *extra: Any,
          **values: Any) -> bool:
    """The one compare-and-set every transition is: True when this caller made the change.

    The audit chain's lock comes first, so every writer takes it before the complaint's row.
    """
    audit.lock(session)
    return bool(session.execute(
        update(Complaint)
        .where(Complaint.id == complaint.id, Complaint.state.in_(tuple(expected)), *extra)
        .values(**values)
        .execution_options(synchronize_session="fetch")
    ).rowcount)


def _entry(session: Session, complaint: Complaint, event: str, by: str, **detail: Any) -> None:
    audit.append(session, event, {"reference": complaint.reference, "by": by, **detail}, complaint.id)


def refusal(session: Session, complaint_id: int, step: str, applies_to: Iterable[ComplaintState]) -> WrongState:
    """Why a step changed nothing, read from the row as committed (another person's step may have just won)."""
    reference, state = session.execute(
        select(Complaint.reference, Complaint.state).where(Complaint.id == complaint_id)).one()
    names = [state.value for state in ComplaintState if state in set(applies_to)]  # in the order of a life
    allowed = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
    return WrongState(f"{reference} is {state}: only a complaint that is {allowed} can be {step}")


def assign(session: Session, complaint: Complaint, owner_id: int, *, previous_owner_id: int | None, by: str,
           reason: str, owner: str) -> bool:
    """A new owner for an open complaint, if it still has the owner the person saw."""
    still = Complaint.owner_id.is_(None) if previous_owner_id is None else Complaint.owner_id == previous_owner_id
    if not _move(session, complaint, COMPLAINT_OPEN, still, owner_id=owner_id):
        return False
    _entry(session, complaint, "complaint-assigned", by, to=owner, reason=reason)
    return True


def resolve(session: Session, complaint: Complaint, *, explanation: str, remedy: str, cause: str, by: str,
            now: datetime) -> bool:
    """What went wrong and the remedy (for the customer), and the cause (for the team). Resolving closes nothing."""
    if not _move(session, complaint, TO_RESOLVE, state=ComplaintState.RESOLVED, explanation=explanation,
                 remedy=remedy, cause=cause, resolved_at=now, resolved_by=by):
        return False
    _entry(session, complaint, "complaint-resolved", by, explanation=explanation, remedy=remedy, cause=cause)
    return True


def told(session: Session, complaint: Complaint, *, via: ToldVia, by: str, now: datetime) -> bool:
    """The customer was told the resolution: the deadline stops here (the first time is kept for the report)."""
    if not _move(session, complaint, [ComplaintState.RESOLVED], state=ComplaintState.TOLD, told_at=now,
                 first_told_at=func.coalesce(Complaint.first_told_at, now), told_via=via, told_by=by,
                 remedy_accepted=None, answer_note=None):
        return False
    _entry(session, complaint, "customer-told", by, via=via)
    return True


def answer(session: Session, complaint: Complaint, *, accepted: bool, note: str, by: str, reopen_due: datetime,
           now: datetime) -> bool:
    """Whether the customer accepts the remedy they were told, once: refused, the complaint goes back to its owner."""
    values: dict[str, Any] = {"remedy_accepted": accepted, "answer_note": note}
    if not accepted:
        values |= _reopened(reopen_due, now)
    if not _move(session, complaint, [ComplaintState.TOLD], Complaint.remedy_accepted.is_(None), **values):
        return False
    _entry(session, complaint, "remedy-accepted" if accepted else "remedy-refused", by, note=note,
           **({} if accepted else {"due_at": reopen_due}))
    return True


def verify(session: Session, complaint: Complaint, *, satisfied: bool, note: str, by: str, reopen_due: datetime,
           now: datetime) -> bool:
    """The follow-up's verdict on the remedy: satisfied closes the complaint, not satisfied reopens it."""
    values: dict[str, Any] = {"satisfied": satisfied, "verdict_note": note, "verified_at": now, "verified_by": by}
    values |= {"state": ComplaintState.CLOSED, "closed_at": now} if satisfied else _reopened(reopen_due, now)
    if not _move(session, complaint, [ComplaintState.TOLD], **values):
        return False
    _entry(session, complaint, "complaint-closed" if satisfied else "complaint-reopened", by, satisfied=satisfied,
           note=note, **({} if satisfied else {"due_at": reopen_due}))
    return True


def _reopened(due: datetime, now: datetime) -> dict[str, Any]:
    return {"state": ComplaintState.REOPENED, "due_at": due, "reopened_at": now,
            "reopened_count": Complaint.reopened_count + 1}


def proof_of(session: Session, customer_id: int, token: str) -> list[Complaint]:
    """A customer asked to be forgotten: their complaints keep their proof (reference, summary, recording, texts,
    audit trail) and `token` for the number they were made from; the complaints, for the caller to report."""
    found = list(session.scalars(select(Complaint).where(Complaint.customer_id == customer_id)
                                 .order_by(Complaint.id)))
    for complaint in found:
        if complaint.phone is not None:
            complaint.phone = token
    return found
