"""What the life of complaints costs where it is paid: on the ring path, and in the monthly compliance report.

- **caller lookup**: `routing.directory.find`, which every `/voice/incoming` runs while the phone rings, now also
  picks the owner of the caller's open complaint (a subquery of the same statement) and reads open complaints by
  state; measured against the statements it replaced, on the same database in alternating rounds (so machine
  noise falls on both alike), for known callers of whom a share have complaints.
- **compliance report**: `routing.compliance.report` for a month of calls (a share of them turned into callbacks,
  kept by a callback call) and its complaints, computed by the database.

    .venv/bin/python bench/complaint_life.py [--customers 100000] [--complaints 20000] [--calls 200000]
                                             [--lookups 4000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from harness import percentile, private_stack
from sqlalchemy import Connection, bindparam, func, insert, select, text

from directo.core.models import Agent, Call, Callback, Complaint, Customer
from directo.core.services import Services
from directo.core.states import (
    COMPLAINT_OPEN,
    AgentStatus,
    CallbackKind,
    CallbackState,
    CallOutcome,
    ComplaintState,
    Direction,
    Role,
)
from routing import compliance
from routing.directory import _OWES, find

BATCH = 20_000
MONTH = datetime(2026, 11, 1, tzinfo=UTC)
# The lookup as it was before complaints had owners: the promise owner or the last agent, open = never resolved.
BEFORE = (
    select(Customer.id, Customer.name, Customer.language, Customer.answered_calls,
           Agent.id, Agent.identity, Agent.name, Agent.active)
    .outerjoin(Agent, Agent.id == func.coalesce(_OWES, Customer.last_agent_id))
    .where(Customer.phone == bindparam("number"))
)
BEFORE_OPEN = (select(Complaint.reference).where(Complaint.customer_id == bindparam("customer_id"),
                                                 Complaint.resolved_at.is_(None))
               .order_by(Complaint.id.desc()).limit(5))


def find_before(connection: Connection, number: str) -> None:
    row = connection.execute(BEFORE, {"number": number}).first()
    connection.execute(BEFORE_OPEN, {"customer_id": row[0]}).scalars().all()


def _insert(svc: Services, model: type, rows: list[dict]) -> None:
    for start in range(0, len(rows), BATCH):
        with svc.db.session() as session:
            session.execute(insert(model), rows[start:start + BATCH])


def populate(svc: Services, customers: int, complaints: int, calls: int, rng: random.Random) -> list[str]:
    """Agents, customers with a last agent, a month of inbound calls (10% became callbacks, most kept by a callback
    call) and complaints in every state; returns the customers' numbers."""
    _insert(svc, Agent, [{"identity": f"agent{i:03d}", "name": f"Agent {i}", "languages_csv": "es",
                          "status": AgentStatus.AVAILABLE, "role": Role.AGENT, "active": True,
                          "created_at": MONTH} for i in range(100)])
    numbers = [f"+346{n:08d}" for n in rng.sample(range(10**8), customers)]
    _insert(svc, Customer, [{"phone": number, "language": "es", "last_agent_id": rng.randint(1, 100),
                             "answered_calls": 1, "created_at": MONTH} for number in numbers])
    month_seconds = 29 * 86400
    rows, callbacks, kept = [], [], []
    for i in range(calls):
        customer = rng.randint(1, customers)
        started = MONTH + timedelta(seconds=rng.random() * month_seconds)
        called_back = rng.random() < 0.1
        agent = None if called_back else rng.randint(1, 100)
        rows.append({"call_sid": f"CA{i:032d}", "direction": Direction.INBOUND, "caller": numbers[customer - 1],
                     "customer_id": customer, "language": "es", "agent_id": agent,
                     "started_at": started, "dial_attempts": 1,
                     "answered_at": None if called_back else started + timedelta(seconds=rng.expovariate(1 / 20)),
                     "ended_at": started + timedelta(minutes=3),
                     "outcome": CallOutcome.CALLBACK if called_back else CallOutcome.ANSWERED,
                     "callback_id": len(callbacks) + 1 if called_back else None})
        if called_back:
            callbacks.append({"phone": numbers[customer - 1], "language": "es", "kind": CallbackKind.CALL_BACK,
                              "state": CallbackState.DONE, "queued_at": started, "due_at": started,
                              "promised_by": started + timedelta(minutes=15), "exclusive_until": started,
                              "attempts": 1, "closed_at": started + timedelta(minutes=6)})
            kept.append({"call_sid": f"CB{i:032d}", "direction": Direction.CALLBACK, "caller": numbers[customer - 1],
                         "customer_id": customer, "language": "es", "agent_id": rng.randint(1, 100),
                         "started_at": started + timedelta(minutes=rng.uniform(1, 10)), "dial_attempts": 1,
                         "outcome": CallOutcome.ANSWERED, "callback_id": len(callbacks)})
    for call in kept:
        call["answered_at"] = call["ended_at"] = call["started_at"] + timedelta(seconds=20)
    _insert(svc, Callback, callbacks)
    _insert(svc, Call, rows + kept)
    states = list(ComplaintState)
    flagged = []
    for i in range(complaints):
        at = MONTH + timedelta(seconds=rng.random() * month_seconds)
        state = rng.choice(states)
        told = at + timedelta(days=rng.uniform(1, 20)) if state in (ComplaintState.TOLD, ComplaintState.CLOSED) \
            else None
        flagged.append({"reference": f"R-2026-{i + 1:06d}", "call_id": i + 1, "customer_id": rows[i]["customer_id"],
                        "agent_id": 1, "owner_id": rng.randint(1, 100), "language": "es", "summary": "bench",
                        "flagged_by": "agent000", "flagged_at": at, "state": state,
                        "due_at": at + timedelta(days=15), "first_due_at": at + timedelta(days=15),
                        "first_told_at": told, "told_at": told, "told_via": "call" if told else None,
                        "satisfied": (rng.random() < 0.8) if state == ComplaintState.CLOSED else None,
                        "reopened_count": int(state == ComplaintState.REOPENED)})
    _insert(svc, Complaint, flagged)
    if svc.db.engine.dialect.name == "postgresql":
        with svc.db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    return numbers


def lookups(svc: Services, numbers: list[str], with_complaints: set[str], count: int,
            rng: random.Random) -> dict[str, list[float]]:
    """Alternating rounds of the lookup as it is and as it was, half of them by callers with a complaint."""
    plain = [n for n in numbers[:50_000] if n not in with_complaints]
    complaining = sorted(with_complaints)
    timings: dict[str, list[float]] = {"before": [], "now": []}
    runs = {"before": lambda c, n: find_before(c, n), "now": lambda c, n: find(c, n, "es")}
    for i in range(count + 200):
        number = rng.choice(complaining if i % 2 else plain)
        for name in (("before", "now") if i % 4 < 2 else ("now", "before")):
            started = time.perf_counter()
            with svc.db.reading() as connection:
                runs[name](connection, number)
            if i >= 200:  # the first rounds warm connections and caches
                timings[name].append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--complaints", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--lookups", type=int, default=4000)
    parser.add_argument("--database-url", default="", help="a PostgreSQL server to use (a throwaway database)")
    args = parser.parse_args()
    rng = random.Random(12)
    with private_stack(args.database_url) as (svc, _env):
        filling = time.perf_counter()
        numbers = populate(svc, args.customers, args.complaints, args.calls, rng)
        filled = time.perf_counter() - filling
        with svc.db.reading() as connection:
            open_ones = set(connection.execute(
                select(Customer.phone).join(Complaint, Complaint.customer_id == Customer.id)
                .where(Complaint.state.in_(COMPLAINT_OPEN))).scalars())
        timings = lookups(svc, numbers, open_ones, args.lookups, rng)
        reports = []
        for _ in range(5):
            started = time.perf_counter()
            with svc.db.session() as session:
                figures = compliance.report(session, MONTH.strftime("%Y-%m"), now=MONTH + timedelta(days=40))
            reports.append((time.perf_counter() - started) * 1000)
        dialect = svc.db.engine.dialect.name
    print(f"database {dialect}, {os.cpu_count()} cores; {args.customers} customers, {args.complaints} complaints "
          f"({len(open_ones)} callers with an open one), {args.calls} calls in the month; filled in {filled:.0f} s")
    print(f"{'caller lookup':<34}{'p50 ms':>9}{'p99 ms':>9}")
    for name, label in (("before", "before (no owners)"), ("now", "now (owner of an open complaint)")):
        print(f"{label:<34}{statistics.median(timings[name]):>9.3f}{percentile(timings[name], 99):>9.3f}")
    print(f"now/before (p50): {statistics.median(timings['now']) / statistics.median(timings['before']):.2f}x")
    print(f"compliance report for the month: median {statistics.median(reports):.0f} ms of 5 "
          f"({figures['calls_received']} calls, {figures['complaints_received']} complaints; "
          f"{figures['share_of_calls_reaching_a_person_within_3_minutes']}% within 3 minutes)")


if __name__ == "__main__":
    main()
