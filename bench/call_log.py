"""Supervisor call log at scale: page timings with 1,000,000 calls in the database.

Bulk-inserts the calls (20 agents, 50,000 callers, 30 days, the outcome mix of a busy floor) into a fresh SQLite
file, and into PostgreSQL when a URL is given, then times what the console runs: the first page, a page
filtered by agent and a week, a keyset page 900,000 rows deep, and the CSV export's first bytes.

    .venv/bin/python bench/call_log.py [--calls 1000000] [--database-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import migrated_from_nothing
from sqlalchemy import func, insert, select, text

from directo.core.db import Database
from directo.core.models import Agent, Call, Customer
from directo.core.states import AgentStatus, CallOutcome, Direction, Role
from voice.supervisor.call_log import Filters, csv_stream, encode_cursor, page

AGENTS = 20
CALLERS = 50_000
DAYS = 30
BATCH = 20_000
END = datetime(2026, 11, 23, tzinfo=UTC)
OUTCOMES = ([CallOutcome.ANSWERED] * 80 + [CallOutcome.CALLBACK] * 8 + [CallOutcome.ABANDONED] * 7
            + [CallOutcome.NO_AGENT] * 3 + [CallOutcome.FALLBACK] * 2)


def seed(db: Database, calls: int) -> float:
    rng = random.Random(7)
    started = time.perf_counter()
    with db.session() as session:
        session.execute(insert(Agent), [
            {"identity": f"agent{n:02}", "name": f"Agent {n}", "languages_csv": "es,en", "role": Role.AGENT,
             "active": True, "status": AgentStatus.OFFLINE, "created_at": END} for n in range(1, AGENTS + 1)])
        session.execute(insert(Customer), [
            {"phone": f"+3460{n:07}", "name": f"Customer {n}", "created_at": END} for n in range(1, CALLERS + 1)])
    span = DAYS * 86400
    for first in range(0, calls, BATCH):
        rows = []
        for n in range(first, min(first + BATCH, calls)):
            at = END - timedelta(seconds=span * (1 - n / calls))
            customer = rng.randint(1, CALLERS)
            outcome = rng.choice(OUTCOMES)
            agent = rng.randint(1, AGENTS) if outcome == CallOutcome.ANSWERED else None
            answered = at + timedelta(seconds=rng.uniform(2, 25)) if agent else None
            rows.append({
                "call_sid": f"CA{n:032x}", "direction": Direction.INBOUND, "from_raw": f"+3460{customer:07}",
                "caller": f"+3460{customer:07}", "customer_id": customer, "language": "es", "agent_id": agent,
                "previous_agent_id": agent if agent and rng.random() < 0.6 else rng.randint(1, AGENTS),
                "dial_attempts": 1, "started_at": at, "answered_at": answered,
                "ended_at": answered + timedelta(seconds=rng.uniform(30, 600)) if answered else at,
                "outcome": outcome,
            })
        with db.engine.begin() as connection:
            connection.execute(insert(Call.__table__), rows)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))
    else:
        with db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    return time.perf_counter() - started


def timed(action: Callable[[], object], repeat: int = 7) -> tuple[float, float]:
    """Median and worst of `repeat` runs, in ms, after one warm-up."""
    action()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs), max(runs)


def measure(url: str, calls: int) -> None:
    db = migrated_from_nothing(url)
    print(f"\n{db.engine.dialect.name}: seeding {calls:,} calls ...", flush=True)
    print(f"  seeded in {seed(db, calls):.0f} s", flush=True)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == calls
        deep = session.execute(select(Call.started_at, Call.id).order_by(Call.started_at.desc(), Call.id.desc())
                               .offset(int(calls * 0.9)).limit(1)).one()
    week = Filters(start=(END - timedelta(days=10)).date(), end=(END - timedelta(days=4)).date(), agent="agent07")
    outcome = Filters(outcome="previous", start=(END - timedelta(days=2)).date())

    def run(filters: Filters, after: str | None = None) -> Callable[[], object]:
        def one() -> object:
            with db.session() as session:
                rows, _ = page(session, filters, after)
                assert rows, "the page came back empty"
                return rows
        return one

    def csv_first_bytes() -> object:
        stream = csv_stream(db, week)
        first = next(stream)
        stream.close()
        return first

    cases = [("first page (50 newest)", run(Filters())),
             ("agent + 7-day range", run(week)),
             ("outcome 'previous agent' + 2 days", run(outcome)),
             ("keyset page 900,000 rows deep", run(Filters(), encode_cursor(*deep))),
             ("CSV export first 2,000 rows", csv_first_bytes)]
    print(f"  {'query':36} {'median ms':>10} {'worst ms':>10}")
    for name, action in cases:
        median, worst = timed(action)
        print(f"  {name:36} {median:10.2f} {worst:10.2f}", flush=True)
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="also run on this PostgreSQL database (its tables are dropped)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure(f"sqlite:///{Path(tmp) / 'call_log.db'}", args.calls)
    if args.database_url:
        measure(args.database_url, args.calls)


if __name__ == "__main__":
    main()
