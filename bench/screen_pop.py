"""The screen pop's memory at scale: what an agent reads before hello, for a customer with a long history, in a call
log of many calls.

Seeds the call log as bench/call_log.py does, gives one customer a long history (calls with notes, a callback
with a recorded reason on every tenth, a promise on every twentieth, a complaint on every fiftieth), then times,
in the same run, the screen pop's queries before the memory (counts, the last five answered calls, open
complaints: the baseline) and the memory's (`routing.memory.remember`: profile, last five contacts with notes,
reasons and promises, what we owe, open complaints), for that customer and for an ordinary one.

    .venv/bin/python bench/screen_pop.py [--calls 200000] [--history 5000] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from call_log import END, timed
from call_log import seed as seed_calls
from harness import migrated_from_nothing
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from directo.core.db import Database
from directo.core.models import Call, Callback, Complaint, Customer, Recording
from directo.core.states import CallbackKind, CallbackState, CallOutcome, Direction, RecordingState
from routing import memory

LONG = 1  # the customer given a long history


def _history(db: Database, calls: int) -> None:
    phone = f"+3460{LONG:07}"
    with db.engine.begin() as connection:
        base = connection.execute(select(func.max(Call.id))).scalar() or 0
        rows = [{"call_sid": f"CAlong{n:026x}", "direction": Direction.INBOUND, "from_raw": phone, "caller": phone,
                 "customer_id": LONG, "language": "es", "agent_id": 1 + n % 20, "dial_attempts": 1,
                 "started_at": END - timedelta(minutes=calls - n), "answered_at": END - timedelta(minutes=calls - n),
                 "ended_at": END - timedelta(minutes=calls - n - 1), "outcome": CallOutcome.ANSWERED,
                 "notes": f"call {n}: what was said, in a sentence or two"} for n in range(calls)]
        connection.execute(insert(Call.__table__), rows)
        reasons = [{"twilio_sid": f"RE{n:032x}", "call_sid": f"CAlong{n:026x}", "kind": "callback-reason",
                    "source_url": "x", "state": RecordingState.STORED, "created_at": END} for n in range(0, calls, 10)]
        connection.execute(insert(Recording.__table__), reasons)
        recording_ids = connection.execute(select(Recording.id).order_by(Recording.id)).scalars().all()
        callbacks: list[dict[str, Any]] = []
        promised: list[dict[str, Any]] = []
        for index, n in enumerate(range(0, calls, 10)):
            at = END - timedelta(minutes=calls - n)
            callbacks.append({"customer_id": LONG, "phone": phone, "language": "es", "origin_call_id": base + n + 1,
                              "kind": CallbackKind.CALL_BACK, "state": CallbackState.DONE, "queued_at": at,
                              "promised_by": at, "due_at": at, "exclusive_until": at, "attempts": 1,
                              "reason_recording_id": recording_ids[index]})
        for n in range(5, calls, 20):
            at = END + timedelta(days=1)
            promised.append({"customer_id": LONG, "phone": phone, "language": "es", "origin_call_id": base + n + 1,
                             "kind": CallbackKind.PROMISE, "state": CallbackState.DONE, "queued_at": at,
                             "promised_by": at, "due_at": at, "exclusive_until": at, "attempts": 1,
                             "preferred_agent_id": 1, "about": "the refund", "created_by": "agent01"})
        connection.execute(insert(Callback.__table__), callbacks)
        connection.execute(insert(Callback.__table__), promised)
        connection.execute(insert(Complaint.__table__), [
            {"reference": f"R-2026-{n:06}", "call_id": base + n + 1, "customer_id": LONG, "agent_id": 1,
             "phone": phone, "language": "es", "summary": "charged twice", "flagged_by": "agent01",
             "flagged_at": END, "due_at": END + timedelta(days=15),
             "first_due_at": END + timedelta(days=15)} for n in range(0, calls, 50)])
        connection.execute(text("ANALYZE"))


def _before(session: Session, customer_id: int) -> object:
    """What the screen pop read about a customer before the memory (voice/agent_context.py, issue 12's base)."""
    theirs = (Call.customer_id == customer_id, Call.answered_at.is_not(None))
    counts = session.execute(select(func.count(), func.count().filter(Call.agent_id == 1)).select_from(Call)
                             .where(*theirs)).one()
    recent = session.execute(select(Call.started_at, Call.outcome).where(*theirs)
                             .order_by(Call.started_at.desc()).limit(5)).all()
    complaints = session.scalars(select(Complaint).where(Complaint.customer_id == customer_id,
                                                         Complaint.resolved_at.is_(None))).all()
    return counts, recent, complaints


def measure(url: str, calls: int, history: int) -> None:
    db = migrated_from_nothing(url)
    print(f"\n{db.engine.dialect.name}: seeding {calls:,} calls and a customer with {history:,} ...", flush=True)
    print(f"  seeded in {seed_calls(db, calls):.0f} s", flush=True)
    _history(db, history)
    print(f"  {'customer':28} {'before: median ms':>18} {'memory: median ms':>18} {'memory worst ms':>16}")
    with db.session() as session:  # an ordinary caller: whoever made the call halfway through the seeding
        ordinary = session.scalar(select(Call.customer_id).where(Call.id == calls // 2))
    for label, customer_id in ((f"long history ({history:,} calls)", LONG), ("ordinary", ordinary)):
        with db.session() as session:
            customer = session.get(Customer, customer_id)
            before, _ = timed(lambda: _before(session, customer_id), repeat=25)  # noqa: B023
            now, worst = timed(lambda: memory.remember(session, customer), repeat=25)  # noqa: B023
            shown = memory.remember(session, customer)
        assert shown["contacts"], "the customer has a history to show"
        print(f"  {label:28} {before:18.2f} {now:18.2f} {worst:16.2f}", flush=True)
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--history", type=int, default=5_000)
    parser.add_argument("--database-url", help="also run on this PostgreSQL database (its tables are dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure(f"sqlite:///{Path(tmp) / 'screen_pop.db'}", args.calls, args.history)
    if args.database_url:
        measure(args.database_url, args.calls, args.history)


if __name__ == "__main__":
    main()
