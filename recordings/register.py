"""The complaints register as people read it (CLI, agent page, console): where each complaint stands, who owns it,
when it is due, what comes next, and its whole story in time order."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from directo.core.models import Agent, Call, Callback, Complaint, utcnow
from directo.core.states import COMPLAINT_OPEN, OPEN, UNANSWERED, CallbackKind, ComplaintState, ToldVia
from recordings import audit

# A complaint whose customer is still not told this close to its due date needs its owner's and a supervisor's eye.
AT_RISK = timedelta(days=2)
OVERDUE, AT_RISK_FLAG = "OVERDUE", "AT RISK"


def deadline_flag(state: str, due_at: datetime, now: datetime) -> str | None:
    """OVERDUE past the due date, AT RISK in its last two days; only while the customer has not been told."""
    if state not in UNANSWERED:
        return None
    if now > due_at:
        return OVERDUE
    if now > due_at - AT_RISK:
        return AT_RISK_FLAG
    return None


def query(*, state: str | None = None, overdue: bool = False, owner_id: int | None = None,
          customer_id: int | None = None, open_only: bool = False,
          now: datetime | None = None) -> Select[tuple[Complaint]]:
    """Complaints newest first, by state (or all open ones), overdue (customer not told by the due date), owner
    and customer."""
    statement = select(Complaint).options(
        selectinload(Complaint.owner), selectinload(Complaint.customer), selectinload(Complaint.messages),
        selectinload(Complaint.recording), selectinload(Complaint.call))
    if state is not None:
        statement = statement.where(Complaint.state == state)
    if open_only:
        statement = statement.where(Complaint.state.in_(COMPLAINT_OPEN))
    if customer_id is not None:
        statement = statement.where(Complaint.customer_id == customer_id)
    if overdue:
        statement = statement.where(Complaint.state.in_(UNANSWERED), Complaint.due_at < (now or utcnow()))
    if owner_id is not None:
        statement = statement.where(Complaint.owner_id == owner_id)
    return statement.order_by(Complaint.id.desc())


def calls_owed(session: Session, complaint_ids: Iterable[int]) -> dict[int, Callback]:
    """The next open call each complaint is owed (explanation or follow-up), in one statement for a whole page."""
    ids = list(complaint_ids)
    owed: dict[int, Callback] = {}
    if not ids:
        return owed
    for callback in session.scalars(select(Callback).where(Callback.complaint_id.in_(ids), Callback.state.in_(OPEN))
                                    .order_by(Callback.due_at.desc())):
        owed[callback.complaint_id] = callback  # the earliest due wins: later rows overwrite
    return owed


# What has to happen next, by code (the agent page words it in the agent's language) and in English.
NEXT_STEP = {
    "resolve": "write the resolution",
    "call": "call the customer to explain it (due {due})",
    "tell-when-they-call": "tell the customer when they call (withheld number)",
    "answer": "record whether the customer accepts the remedy",
    "followup": "follow-up call {due}: did the remedy work?",
    "verdict": "record the follow-up's verdict",
    "none": "none: closed",
}


def next_step(complaint: Complaint, owed: Callback | None) -> str:
    """The code of what has to happen next (a key of NEXT_STEP)."""
    state = complaint.state
    if state in (ComplaintState.RECEIVED, ComplaintState.REOPENED):
        return "resolve"
    if state == ComplaintState.RESOLVED:
        if complaint.phone is None:
            return "tell-when-they-call"
        return "call" if owed is not None else "answer"
    if state == ComplaintState.TOLD:
        if complaint.remedy_accepted is None and complaint.told_via == ToldVia.CALL:
            return "answer"
        return "followup" if owed is not None and owed.kind == CallbackKind.COMPLAINT_FOLLOWUP else "verdict"
    return "none"


def _day_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M")


def days_open(complaint: Complaint, now: datetime) -> int:
    return ((complaint.closed_at or now) - complaint.flagged_at).days


def view(complaint: Complaint, now: datetime, owed: Callback | None = None) -> dict[str, Any]:
    """One complaint as JSON-ready facts (times as ISO strings); the register, `complaints show` and the pages."""
    recording = complaint.recording
    texts = complaint.reference_texts
    owner = complaint.owner
    return {
        "reference": complaint.reference,
        "call_id": complaint.call_id,
        "call_sid": complaint.call.call_sid,
        "state": complaint.state,
        "owner": owner.identity if owner else None,
        "owner_name": owner.name if owner else None,
        "phone": complaint.phone,
        "caller_name": complaint.customer.name if complaint.customer else None,
        "language": complaint.language,
        "summary": complaint.summary,
        "flagged_by": complaint.flagged_by,
        "flagged_at": _iso(complaint.flagged_at),
        "due_at": _iso(complaint.due_at),
        "days_open": days_open(complaint, now),
        "flag": deadline_flag(complaint.state, complaint.due_at, now),
        "next": (step := next_step(complaint, owed)),
        "next_step": NEXT_STEP[step].format(due=_day_time(owed.due_at) if owed else ""),
        "next_call": {"kind": owed.kind, "due_at": _iso(owed.due_at), "state": owed.state} if owed else None,
        "spoken": complaint.spoken_at is not None,
        "sms": texts[-1].state if texts else None,
        "sms_messages": len(texts),
        "recording": recording.state if recording else None,
        "recording_sha256": recording.sha256 if recording else None,
        "explanation": complaint.explanation,
        "remedy": complaint.remedy,
        "cause": complaint.cause,
        "resolved_at": _iso(complaint.resolved_at),
        "resolved_by": complaint.resolved_by,
        "told_at": _iso(complaint.told_at),
        "told_via": complaint.told_via,
        "told_by": complaint.told_by,
        "remedy_accepted": complaint.remedy_accepted,
        "answer_note": complaint.answer_note,
        "verified_at": _iso(complaint.verified_at),
        "verified_by": complaint.verified_by,
        "satisfied": complaint.satisfied,
        "verdict_note": complaint.verdict_note,
        "closed_at": _iso(complaint.closed_at),
        "reopened_count": complaint.reopened_count,
        "reopened_at": _iso(complaint.reopened_at),
    }


def listing(session: Session, statement: Select[tuple[Complaint]], now: datetime | None = None,
            limit: int | None = None) -> list[dict[str, Any]]:
    now = now or utcnow()
    found = list(session.scalars(statement.limit(limit) if limit else statement))
    owed = calls_owed(session, [c.id for c in found])
    return [view(c, now, owed.get(c.id)) for c in found]


def attention(session: Session, now: datetime | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """Complaints whose customer is still not told, overdue or with two days left at most, due first: where the
    owner and a supervisor, the customer's advocate inside the company, have to look now."""
    now = now or utcnow()
    statement = query(now=now).where(Complaint.state.in_(UNANSWERED), Complaint.due_at < now + AT_RISK)
    return listing(session, statement.order_by(None).order_by(Complaint.due_at), now, limit)


def row(session: Session, complaint: Complaint, now: datetime | None = None) -> dict[str, Any]:
    """One complaint's view, with the call it is owed next."""
    return view(complaint, now or utcnow(), calls_owed(session, [complaint.id]).get(complaint.id))


def timeline(session: Session, complaint: Complaint) -> list[dict[str, Any]]:
    """Every step of a complaint in time order: audit entries, the calls made about it, its texts, its recording."""
    steps: list[dict[str, Any]] = [
        {"at": e.at, "what": "audit", "event": e.event, "detail": json.loads(e.payload), "hash": e.hash}
        for e in audit.entries(session, complaint.id)]
    owed = session.scalars(select(Callback).where(Callback.complaint_id == complaint.id)).all()
    calls = session.execute(
        select(Call, Agent.identity).outerjoin(Agent, Agent.id == Call.agent_id)
        .where((Call.id == complaint.call_id) | Call.callback_id.in_([c.id for c in owed]))).all()
    kinds = {c.id: c.kind for c in owed}
    for call, agent in calls:
        steps.append({"at": call.started_at, "what": "call", "event": kinds.get(call.callback_id, "flagged-on"),
                      "detail": {"call_sid": call.call_sid, "direction": call.direction, "agent": agent,
                                 "outcome": call.outcome, "answered_at": _iso(call.answered_at),
                                 "ended_at": _iso(call.ended_at)}, "call_id": call.id})
    for callback in owed:
        steps.append({"at": callback.queued_at, "what": "callback", "event": f"{callback.kind} {callback.state}",
                      "detail": {"id": callback.id, "due_at": _iso(callback.due_at), "attempts": callback.attempts,
                                 "closed": callback.close_reason}})
    for message in complaint.messages:
        steps.append({"at": message.created_at, "what": "sms", "event": f"{message.topic} {message.state}",
                      "detail": {"to": message.to, "body": message.body, "sid": message.message_sid,
                                 "attempts": message.attempts}})
    recording = complaint.recording
    if recording is not None:
        steps.append({"at": recording.created_at, "what": "recording", "event": f"{recording.kind} {recording.state}",
                      "detail": {"sha256": recording.sha256, "path": recording.path,
                                 "duration_ms": recording.duration_ms}, "recording_id": recording.id})
    return sorted(steps, key=lambda step: step["at"])


def yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
