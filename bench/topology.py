"""What the several-machines topology costs a call: Redis through Sentinel against the same master named directly,
and PostgreSQL through PgBouncer (transaction mode) against the same database directly, in rounds that
alternate so that machine noise falls on both alike.

    .venv/bin/python bench/topology.py [--rounds 20] [--per-round 200] --database-url postgresql+psycopg://...

Redis: the routing snapshot (the Lua script every incoming call runs first). PostgreSQL: the smallest webhook
write (an exactly-once receipt, committed in a transaction of its own).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import TOP, percentile

sys.path.insert(0, str(TOP / "tests"))

from failover_rig import pgbouncer, sentinel_group  # noqa: E402
from sqlalchemy import text  # noqa: E402

from directo.core.db import Database, fresh_database  # noqa: E402
from directo.core.services import redis_client  # noqa: E402
from routing.presence import Presence  # noqa: E402


def timed(action: Callable[[], object], times: int) -> list[float]:
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        spent.append((time.perf_counter() - started) * 1000)
    return spent


def compare(name: str, ways: dict[str, Callable[[], object]], rounds: int, per_round: int) -> None:
    samples: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(rounds):
        for way, action in ways.items():
            samples[way] += timed(action, per_round)
    base = percentile(next(iter(samples.values())), 50)
    for way, values in samples.items():
        p50 = percentile(values, 50)
        print(f"{name:<28} {way:<22} p50 {p50:7.3f} ms  p99 {percentile(values, 99):7.3f} ms  x{p50 / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=200)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    args = parser.parse_args()
    if not args.database_url.startswith(("postgres", "postgresql")):
        parser.error("--database-url (or DATABASE_URL) must name a PostgreSQL server")
    workdir = Path(tempfile.mkdtemp(prefix="directo-topology-"))
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; {args.rounds} rounds of {args.per_round}")
    with sentinel_group(workdir) as group:
        direct_redis = redis_client(f"redis://127.0.0.1:{group.master().port}/0", socket_timeout=2)
        watched_redis = redis_client(group.url, socket_connect_timeout=0.5, socket_timeout=2)
        presences = {"redis:// (direct)": Presence(direct_redis), "redis+sentinel://": Presence(watched_redis)}
        compare("routing snapshot (Redis)",
                {way: (lambda p=p: p.snapshot("es", None, time.time())) for way, p in presences.items()},
                args.rounds, args.per_round)
    with fresh_database(args.database_url, workdir) as direct, pgbouncer(direct) as pooled:
        databases = {"PostgreSQL (direct)": Database(direct), "PgBouncer, transaction": Database(pooled, direct)}
        databases["PostgreSQL (direct)"].migrate()
        counter = iter(range(10**9))

        def write(db: Database) -> None:
            with db.session() as session:
                n = next(counter)
                session.execute(text("INSERT INTO webhook_receipts (call_sid, event, response, received_at) "
                                     "VALUES (:sid, 'bench', '', now())"), {"sid": f"CA{n:032d}"})

        compare("webhook write (database)", {way: (lambda db=db: write(db)) for way, db in databases.items()},
                args.rounds, max(1, args.per_round // 4))
        for db in databases.values():
            db.dispose()


if __name__ == "__main__":
    main()
