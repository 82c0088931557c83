"""The complaints register (where each complaint stands, who owns it, when it is due, how its acknowledgement went)
and one call's full story."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from directo.core.db import Database
from directo.core.models import Agent, Call, Callback, CallEvent, CallNote, Complaint, Customer, Recording, utcnow
from directo.core.states import ComplaintState, SmsState
from recordings import register
from recordings.audit import verify
from voice.supervisor.call_log import (
    FilterError,
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
               "recording", "recording_sha256", "resolved_at", "state", "owner", "due_at", "days_open", "flag",
               "told_at", "told_via", "remedy_accepted", "satisfied", "reopened_count", "closed_at", "next_step"]


@dataclass(frozen=True)
class RegisterFilters(Filters):
    """The log's filters (dates of flagging, owner, caller) and the register's own: state, overdue."""

    state: str | None = None
    overdue: bool = False

    @classmethod
    def parse_register(cls, args: dict[str, str], shared: Filters) -> RegisterFilters:
        state = args.get("state") or None
        if state is not None and state not in set(ComplaintState):
            raise FilterError(f"state must be one of {', '.join(ComplaintState)}")
        return cls(**{f.name: getattr(shared, f.name) for f in fields(Filters)}, state=state,
                   overdue=args.get("overdue") == "1")

    def query_args(self) -> dict[str, str]:
        return super().query_args() | ({"state": self.state} if self.state else {}) | (
            {"overdue": "1"} if self.overdue else {})


def _view(complaint: Complaint, now: datetime, owed: Callback | None) -> dict[str, Any]:
    recording = complaint.recording
    row = register.view(complaint, now, owed)
    return row | {
        "call_id": complaint.call_id, "flagged_at": complaint.flagged_at, "due_at": complaint.due_at,
        "agent": complaint.agent.identity if complaint.agent else None, "spoken_at": complaint.spoken_at,
        "recording_id": recording.id if recording else None, "sha256": row["recording_sha256"],
        "acknowledged": complaint.spoken_at is not None and row["sms"] == SmsState.DELIVERED,
    }


def page(session: Session, filters: Filters, after: str | None = None,
         size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], str | None]:
    """Newest complaints first, paged by id (complaint ids grow with time)."""
    now = utcnow()
    where = who_and_when(session, filters, Complaint.flagged_at, Complaint.owner_id, Complaint.phone)
    if after:
        where.append(Complaint.id < cursor_id(after))
    wanted = filters if isinstance(filters, RegisterFilters) else RegisterFilters()
    found = session.scalars(register.query(state=wanted.state, overdue=wanted.overdue, now=now)
                            .options(selectinload(Complaint.agent)).where(*where).limit(size + 1)).all()
    more = len(found) > size
    found = found[:size]
    owed = register.calls_owed(session, [c.id for c in found])
    return [_view(c, now, owed.get(c.id)) for c in found], str(found[-1].id) if more else None


def _csv_row(row: dict[str, Any]) -> list[Any]:
    def text(value: Any) -> Any:
        return "" if value is None else register.yes_no(value) if isinstance(value, bool) else value

    return [row["reference"], row["flagged_at"].isoformat(), row["phone"] or "", row["caller_name"] or "",
            row["agent"] or "", row["summary"], row["spoken_at"].isoformat() if row["spoken_at"] else "",
            row["sms"] or "", row["recording"] or "", row["sha256"] or "", text(row["resolved_at"]),
            row["state"], text(row["owner"]), row["due_at"].isoformat(), row["days_open"], text(row["flag"]),
            text(row["told_at"]), text(row["told_via"]), text(row["remedy_accepted"]), text(row["satisfied"]),
            row["reopened_count"], text(row["closed_at"]), row["next_step"]]


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
    complaint = session.scalar(register.query().options(selectinload(Complaint.agent))
                               .where(Complaint.call_id == call.id))
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
        "call": call, "events": events, "callbacks": callbacks,
        "complaint": _view(complaint, utcnow(), None) if complaint else None,
        "recordings": [*recordings, *extra], "customer": customer, "agent": agent, "previous": previous,
        "outcome": outcome_label(call), "waited": seconds(call.started_at, call.answered_at),
        "talked": seconds(call.answered_at, call.ended_at),
    }
