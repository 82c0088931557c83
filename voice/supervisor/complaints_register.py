"""The complaints register (each complaint with how its acknowledgement went) and one call's full story."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from directo.core.db import Database
from directo.core.models import Agent, Call, Callback, CallEvent, CallNote, Complaint, Customer, Recording
from directo.core.states import SmsState
from recordings.audit import verify
from voice.supervisor.call_log import (
    Filters,
    cursor_id,
    outcome_label,
    seconds,
    stream_csv,
    who_and_when,
)

PAGE_SIZE = 50
EXPORT_BATCH = 500
CSV_COLUMNS = ["reference", "flagged_at", "phone", "caller_name", "agent", "summary", "spoken_at", "sms",
               "recording", "recording_sha256", "resolved_at"]


def _view(complaint: Complaint) -> dict[str, Any]:
    texts = complaint.reference_texts
    sms = texts[-1].state if texts else None
    recording = complaint.recording
    return {
        "reference": complaint.reference, "call_id": complaint.call_id, "flagged_at": complaint.flagged_at,
        "phone": complaint.phone, "caller_name": complaint.customer.name if complaint.customer else None,
        "agent": complaint.agent.identity if complaint.agent else None, "summary": complaint.summary,
        "spoken_at": complaint.spoken_at, "sms": sms, "recording": recording.state if recording else None,
        "recording_id": recording.id if recording else None,
        "sha256": recording.sha256 if recording else None, "resolved_at": complaint.resolved_at,
        "acknowledged": complaint.spoken_at is not None and sms == SmsState.DELIVERED,
    }


def page(session: Session, filters: Filters, after: str | None = None,
         size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], str | None]:
    """Newest complaints first, paged by id (complaint ids grow with time)."""
    where = who_and_when(session, filters, Complaint.flagged_at, Complaint.agent_id, Complaint.phone)
    if after:
        where.append(Complaint.id < cursor_id(after))
    found = session.scalars(
        select(Complaint).where(*where).order_by(Complaint.id.desc()).limit(size + 1)
        .options(selectinload(Complaint.messages), selectinload(Complaint.recording),
                 selectinload(Complaint.customer), selectinload(Complaint.agent))
    ).all()
    more = len(found) > size
    found = found[:size]
    return [_view(c) for c in found], str(found[-1].id) if more else None


def _csv_row(row: dict[str, Any]) -> list[Any]:
    return [row["reference"], row["flagged_at"].isoformat(), row["phone"] or "", row["caller_name"] or "",
            row["agent"] or "", row["summary"], row["spoken_at"].isoformat() if row["spoken_at"] else "",
            row["sms"] or "", row["recording"] or "", row["sha256"] or "",
            row["resolved_at"].isoformat() if row["resolved_at"] else ""]


def csv_stream(db: Database, filters: Filters) -> Iterator[str]:
    return stream_csv(db, CSV_COLUMNS, lambda session, cursor: page(session, filters, cursor, EXPORT_BATCH), _csv_row)


def chain_status(session: Session) -> dict[str, Any]:
    """The audit chain walked end to end on every view: a supervisor sees at once if a record was altered."""
    result = verify(session)
    return {"ok": result.broken_at is None, "entries": result.entries, "head": result.head,
            "broken_at": result.broken_at, "problem": result.problem}


def call_detail(session: Session, call: Call) -> dict[str, Any]:
    """Everything about one call: who, when, its timeline, notes, complaint, callbacks and recordings."""
    events = session.scalars(select(CallEvent).where(CallEvent.call_id == call.id).order_by(CallEvent.at,
                                                                                            CallEvent.id)).all()
    complaint = session.scalar(select(Complaint).where(Complaint.call_id == call.id)
                               .options(selectinload(Complaint.messages), selectinload(Complaint.recording)))
    callbacks = session.scalars(select(Callback).where(
        (Callback.origin_call_id == call.id) | (Callback.id == call.callback_id)).order_by(Callback.id)).all()
    recordings = session.scalars(select(Recording).where(Recording.call_sid == call.call_sid)
                                 .order_by(Recording.id)).all()
    reasons = [session.get(Recording, cb.reason_recording_id) for cb in callbacks if cb.reason_recording_id]
    extra = [r for r in (complaint.recording if complaint else None, *reasons) if r is not None and r not in recordings]
    customer = session.get(Customer, call.customer_id) if call.customer_id else None
    agent = session.get(Agent, call.agent_id) if call.agent_id else None
    previous = session.get(Agent, call.previous_agent_id) if call.previous_agent_id else None
    notes = session.execute(select(CallNote.written_at, CallNote.notes, Agent.identity, Agent.name)
                            .outerjoin(Agent, Agent.id == CallNote.agent_id)
                            .where(CallNote.call_id == call.id).order_by(CallNote.id.desc())).all()
    return {
        "notes_history": notes,
        "call": call, "events": events, "complaint": _view(complaint) if complaint else None, "callbacks": callbacks,
        "recordings": [*recordings, *extra], "customer": customer, "agent": agent, "previous": previous,
        "outcome": outcome_label(call), "waited": seconds(call.started_at, call.answered_at),
        "talked": seconds(call.answered_at, call.ended_at),
    }
