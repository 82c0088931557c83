"""The call log as supervisors read it: filtered, newest first, keyset-paged so page 5,000 costs what page 1 does."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from directo.core.db import Database
from directo.core.models import Agent, Call, Complaint, Customer
from directo.core.states import CallOutcome
from voice.input_guard import MAX_ID

PAGE_SIZE = 50
EXPORT_BATCH = 2000
# How supervisors read each stored outcome; an answered call is told apart by who answered it.
PREVIOUS, ANOTHER = "previous", "another"
LABELS = {
    CallOutcome.CALLBACK: "callback",
    CallOutcome.ABANDONED: "abandoned",
    CallOutcome.NO_AGENT: "no agent",
    CallOutcome.FALLBACK: "fallback",
    CallOutcome.NO_ANSWER: "no answer",
    CallOutcome.AGENT_NO_ANSWER: "agent did not answer",
    CallOutcome.RINGING: "ringing",
    CallOutcome.ROUTING: "routing",
}
# What the outcome filter offers: every outcome, answered ones split by who answered.
OUTCOMES = {PREVIOUS: "answered by previous agent", ANOTHER: "answered by another agent", **LABELS}
assert set(LABELS) | {CallOutcome.ANSWERED} == set(CallOutcome), "every outcome has a label"
# The dates a filter may name: the day after the last must still be a date, and a timestamp in any time zone.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)
CSV_COLUMNS = ["call_sid", "direction", "started_at", "caller", "caller_name", "agent", "waited_s", "talked_s",
               "outcome", "complaint"]


# A spreadsheet runs a cell beginning with one of these as a formula (=HYPERLINK(...) in a complaint summary would).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


class FilterError(ValueError):
    """A filter the page cannot apply; the message says which and why."""


@dataclass(frozen=True)
class Filters:
    start: date | None = None
    end: date | None = None
    agent: str | None = None
    caller: str | None = None
    outcome: str | None = None

    @classmethod
    def parse(cls, args: dict[str, str]) -> Filters:
        """Read the query string; empty fields mean 'any'."""
        start, end = _day(args, "from"), _day(args, "to")
        if start and end and end < start:
            raise FilterError("'to' is before 'from'")
        outcome = args.get("outcome") or None
        if outcome is not None and outcome not in OUTCOMES:
            raise FilterError(f"outcome must be one of {', '.join(OUTCOMES)}")
        return cls(start, end, (args.get("agent") or "").strip() or None,
                   (args.get("caller") or "").strip() or None, outcome)

    def query_args(self) -> dict[str, str]:
        values = {"from": self.start, "to": self.end, "agent": self.agent, "caller": self.caller,
                  "outcome": self.outcome}
        return {key: str(value) for key, value in values.items() if value}


def _day(args: dict[str, str], key: str) -> date | None:
    raw = (args.get(key) or "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise FilterError(f"'{key}' must be a date as YYYY-MM-DD, not {raw!r}") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise FilterError(f"'{key}' must be a date between {FIRST_DAY} and {LAST_DAY}, not {raw!r}")
    return day


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def in_range(column: Any, filters: Filters) -> list[Any]:
    """The date filters on `column`: whole UTC days, 'to' included."""
    where = []
    if filters.start:
        where.append(column >= midnight(filters.start))
    if filters.end:
        where.append(column < midnight(filters.end + timedelta(days=1)))
    return where


def who_and_when(session: Session, filters: Filters, when: Any, agent: Any, caller: Any) -> list[Any]:
    """The filters every register shares: date range on `when`, the agent (by identity) and the caller's number."""
    where = in_range(when, filters)
    if filters.agent:
        agent_id = session.scalar(select(Agent.id).where(Agent.identity == filters.agent))
        if agent_id is None:
            raise FilterError(f"no agent {filters.agent!r}")
        where.append(agent == agent_id)
    if filters.caller:
        where.append(caller == filters.caller)
    return where


def encode_cursor(started_at: datetime, call_id: int) -> str:
    return f"{started_at.astimezone(UTC).isoformat()}~{call_id}"


def decode_cursor(raw: str) -> tuple[datetime, int]:
    stamp, _, call_id = raw.rpartition("~")
    try:
        return datetime.fromisoformat(stamp).astimezone(UTC), cursor_id(call_id)
    except (ValueError, OverflowError):  # OverflowError: a time zone that moves year 1 or 9999 off the calendar
        raise FilterError(f"page cursor {raw!r} is not one this page made") from None


def cursor_id(raw: str) -> int:
    """The id part of a cursor: plain ASCII digits, within the database's integers."""
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_ID:
        raise FilterError(f"page cursor {raw!r} is not one this page made")
    return int(raw)


def _conditions(session: Session, filters: Filters) -> list[Any]:
    where = who_and_when(session, filters, Call.started_at, Call.agent_id, Call.caller)
    if filters.outcome in (PREVIOUS, ANOTHER):
        where.append(Call.outcome == CallOutcome.ANSWERED)
        same = Call.agent_id == Call.previous_agent_id
        where.append(same if filters.outcome == PREVIOUS else or_(Call.previous_agent_id.is_(None), ~same))
    elif filters.outcome:
        where.append(Call.outcome == filters.outcome)
    return where


def _query(where: list[Any]) -> Select[Any]:
    return (
        select(Call.id, Call.call_sid, Call.direction, Call.started_at, Call.answered_at, Call.ended_at, Call.caller,
               Call.outcome, Call.agent_id, Call.previous_agent_id, Customer.name.label("caller_name"),
               Agent.identity.label("agent"), Agent.name.label("agent_name"), Complaint.reference.label("complaint"))
        .outerjoin(Customer, Customer.id == Call.customer_id)
        .outerjoin(Agent, Agent.id == Call.agent_id)
        .outerjoin(Complaint, Complaint.call_id == Call.id)
        .where(*where)
        .order_by(Call.started_at.desc(), Call.id.desc())
    )


def _before(cursor: tuple[datetime, int]) -> Any:
    # Written as a range plus a tie-break (not a row-value comparison) so both planners keep to the index.
    started, call_id = cursor
    return and_(Call.started_at <= started, or_(Call.started_at < started, Call.id < call_id))


def outcome_label(row: Any) -> str:
    if row.outcome == CallOutcome.ANSWERED:
        return OUTCOMES[PREVIOUS if row.agent_id == row.previous_agent_id else ANOTHER]
    return LABELS.get(row.outcome, row.outcome)


def seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 1)


def _view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "call_sid": row.call_sid, "direction": row.direction, "started_at": row.started_at,
        "caller": row.caller, "caller_name": row.caller_name, "agent": row.agent, "agent_name": row.agent_name,
        "waited": seconds(row.started_at, row.answered_at),
        "talked": seconds(row.answered_at, row.ended_at),
        "outcome": outcome_label(row), "complaint": row.complaint,
    }


def page(session: Session, filters: Filters, after: str | None = None,
         size: int = PAGE_SIZE) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the log and the cursor of the next (None on the last page)."""
    where = _conditions(session, filters)
    if after:
        where.append(_before(decode_cursor(after)))
    rows = session.execute(_query(where).limit(size + 1)).all()
    more = len(rows) > size
    rows = rows[:size]
    return [_view(row) for row in rows], encode_cursor(rows[-1].started_at, rows[-1].id) if more else None


def stream_csv(db: Database, columns: list[str], fetch: Callable[[Session, str | None], tuple[list[Any], str | None]],
               as_row: Callable[[Any], list[Any]]) -> Iterator[str]:
    """A CSV of every page `fetch` returns, batch by batch, each in its own short unit of work: memory stays flat
    however many rows match, and no transaction is held open while the client reads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    cursor: str | None = None
    while True:
        with db.session() as session:
            rows, cursor = fetch(session, cursor)
        writer.writerows([spreadsheet_safe(cell) for cell in as_row(row)] for row in rows)
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if cursor is None:
            return


def spreadsheet_safe(cell: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe, so it shows as the text it is; plain
    numbers (a caller's +34..., a duration) are left as they are, since a number runs nothing."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def _csv_row(row: dict[str, Any]) -> list[Any]:
    return [row["call_sid"], row["direction"], row["started_at"].isoformat(), row["caller"] or "",
            row["caller_name"] or "", row["agent"] or "", _blank(row["waited"]), _blank(row["talked"]),
            row["outcome"], row["complaint"] or ""]


def csv_stream(db: Database, filters: Filters) -> Iterator[str]:
    """The whole filtered log as CSV, newest first."""
    return stream_csv(db, CSV_COLUMNS, lambda session, cursor: page(session, filters, cursor, EXPORT_BATCH), _csv_row)


def _blank(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"
