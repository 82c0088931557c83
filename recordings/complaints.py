"""Flagging a complaint: the reference is committed before anything is said or sent, then the SMS is queued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from directo.core.models import Call, CallEvent, Complaint, utcnow
from directo.core.services import Services
from directo.core.states import SmsTopic
from recordings import audit, sms
from recordings.acknowledgement import sms_body
from recordings.errors import ComplaintError, NotAllowed, NotFound, TooEarly
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
        complaint = Complaint(
            reference=next_reference(session, now.year), call_id=call.id, customer_id=call.customer_id,
            agent_id=call.agent_id, phone=call.caller, language=call.language, summary=summary,
            flagged_by=flagged_by, flagged_at=now,
        )
        session.add(complaint)
        session.flush()
        audit.append(session, "complaint-flagged", {
            "reference": complaint.reference, "call_sid": call_sid, "flagged_by": flagged_by, "summary": summary,
            "phone": call.caller,
        }, complaint.id)
        session.add(CallEvent(call_id=call.id, at=now, kind="complaint-flagged",
                              detail={"reference": complaint.reference, "by": flagged_by}))
        text = sms.compose(session, SmsTopic.COMPLAINT_REFERENCE, complaint.id, complaint.phone,
                           sms_body(complaint.language, complaint.reference), complaint.id) if complaint.phone else None
        return Flagged(complaint.id, complaint.reference, call_sid, created=True, text_id=text.id if text else None)


def proof_of(session: Session, customer_id: int, token: str) -> list[Complaint]:
    """A customer asked to be forgotten: their complaints keep their proof (reference, summary, recording, texts,
    audit trail) and `token` for the number they were made from; the complaints, for the caller to report."""
    found = list(session.scalars(select(Complaint).where(Complaint.customer_id == customer_id)
                                 .order_by(Complaint.id)))
    for complaint in found:
        if complaint.phone is not None:
            complaint.phone = token
    return found
