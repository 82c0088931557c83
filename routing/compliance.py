"""The monthly compliance report: the two headline promises of Spain's customer-service bill, measured.

Calls: every inbound call that started in the month (UTC). It reached a person within 3 minutes when the time from
its start to the moment a person was talking with the customer is at most 180 s: for an answered call, the agent's
answer; for a call that became a callback, the moment the customer answered the callback (or, had they called in
again meanwhile, the moment that call reached a person and closed the callback). Calls that reached nobody (the
caller hung up, a withheld number nobody could call back, a callback missed) count as not reached.

Complaints: every complaint flagged in the month, as it stands when the report is made. Resolved within the deadline
means its customer was first told the resolution (by phone or SMS) by its legal due date (flagged +
COMPLAINT_RESOLUTION_DAYS); the share is of the complaints whose outcome is known (told, or due date passed).
"""

from __future__ import annotations

import csv
import io
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session, aliased

from directo.core.models import Call, Callback, Complaint, utcnow
from directo.core.states import UNANSWERED, CallbackState, Direction, ToldVia
from routing.callbacks import SERVED

TARGET_SECONDS = 180
# A call made late on the month's last day may be called back after midnight: callback calls are looked for a
# day beyond the month.
CALLBACK_MARGIN = timedelta(days=1)


def month_start(text: str) -> datetime:
    """The first instant (UTC) of a month written YYYY-MM."""
    try:
        start = datetime.strptime(text.strip(), "%Y-%m")
    except ValueError:
        raise ValueError(f"month {text!r}: write it as YYYY-MM, e.g. 2026-11") from None
    return start.replace(tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


def _seconds(session: Session, later: Any, earlier: Any) -> ColumnElement[Any]:
    """Seconds between two stored times, to the millisecond, in SQL: the month's calls are counted by the database,
    not loaded. Rounded because SQLite's Julian days are floats: 180 s exactly came out as 180.00001."""
    if session.get_bind().dialect.name == "postgresql":
        return func.round(func.extract("epoch", later - earlier), 3)
    return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)


def _share(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def calls(session: Session, start: datetime, end: datetime) -> dict[str, Any]:
    callback_call = aliased(Call)
    reached_by_callback = (
        select(callback_call.callback_id, func.min(callback_call.answered_at).label("at"))
        .where(callback_call.direction == Direction.CALLBACK, callback_call.answered_at.is_not(None),
               callback_call.started_at >= start, callback_call.started_at < end + CALLBACK_MARGIN)
        .group_by(callback_call.callback_id)
        .subquery()
    )
    served = case((and_(Callback.state == CallbackState.DONE, Callback.close_reason == SERVED), Callback.closed_at))
    reached_at = func.coalesce(Call.answered_at, reached_by_callback.c.at, served)
    fast = and_(reached_at.is_not(None), _seconds(session, reached_at, Call.started_at) <= TARGET_SECONDS)
    received, reached, within = session.execute(
        select(func.count(), func.count(reached_at), func.coalesce(func.sum(case((fast, 1), else_=0)), 0))
        .select_from(Call)
        .outerjoin(Callback, Callback.id == Call.callback_id)
        .outerjoin(reached_by_callback, reached_by_callback.c.callback_id == Call.callback_id)
        .where(Call.direction == Direction.INBOUND, Call.started_at >= start, Call.started_at < end)
    ).one()
    return {
        "calls_received": received,
        "calls_reaching_a_person": reached,
        "calls_reaching_a_person_within_3_minutes": within,
        "share_of_calls_reaching_a_person_within_3_minutes": _share(within, received),
    }


def complaints(session: Session, start: datetime, end: datetime, now: datetime) -> dict[str, Any]:
    rows = session.execute(
        select(Complaint.flagged_at, Complaint.first_due_at, Complaint.first_told_at, Complaint.told_via,
               Complaint.satisfied, Complaint.reopened_count, Complaint.state, Complaint.due_at)
        .where(Complaint.flagged_at >= start, Complaint.flagged_at < end)
    ).all()
    told = [r for r in rows if r.first_told_at is not None]
    decided = [r for r in rows if r.first_told_at is not None or r.first_due_at < now]
    in_time = [r for r in told if r.first_told_at <= r.first_due_at]
    verified = [r for r in rows if r.satisfied is not None]
    satisfied = [r for r in verified if r.satisfied]
    days = [(r.first_told_at - r.flagged_at).total_seconds() / 86400 for r in told]
    return {
        "complaints_received": len(rows),
        "complaints_with_deadline_decided": len(decided),
        "complaints_resolved_within_deadline": len(in_time),
        "share_of_complaints_resolved_within_deadline": _share(len(in_time), len(decided)),
        "complaints_customer_told": len(told),
        "complaints_customer_told_by_sms": sum(r.told_via == ToldVia.SMS for r in told),
        "median_days_to_customer_told": round(statistics.median(days), 1) if days else None,
        "complaints_verified": len(verified),
        "complaints_satisfied_at_verification": len(satisfied),
        "share_satisfied_at_verification": _share(len(satisfied), len(verified)),
        "complaints_reopened": sum(r.reopened_count > 0 for r in rows),
        "complaints_open_past_deadline": sum(r.state in UNANSWERED and r.due_at < now for r in rows),
    }


def report(session: Session, month: str, now: datetime | None = None) -> dict[str, Any]:
    """Every figure of the month, one key each, named for what it counts."""
    now = now or utcnow()
    start = month_start(month)
    end = next_month(start)
    return {
        "month": start.strftime("%Y-%m"),
        "generated_at": now.isoformat(timespec="seconds"),
        "answer_target_seconds": TARGET_SECONDS,
        **calls(session, start, end),
        **complaints(session, start, end, now),
    }


def as_csv(figures: dict[str, Any]) -> str:
    """One header row of figure names and one row of values: months exported one after another line up."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(figures.keys())
    writer.writerow("" if value is None else value for value in figures.values())
    return out.getvalue()
