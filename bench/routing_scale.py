"""The routing decision's cost as the call center grows: agents 10 -> 10,000 and customers 1,000 -> 1,000,000.

One decision is what `/voice/incoming` does before it can answer: look the caller up (`routing.directory.lookup`,
creating the customer on a first call) and pick and reserve an agent (`routing.router.route`). It must not grow
with the size of the call center. Each size gets a fresh database and a private Redis, filled with bulk inserts;
80% of the timed calls come from known customers (whose previous agent is one of the agents), 20% are first calls.
Prints median and p99 per size and the ratio of the largest size's median to the smallest's (target: <= 1.5x).

    .venv/bin/python bench/routing_scale.py [--decisions 3000] [--sizes 10:1000,100:10000,1000:100000,10000:1000000]
                                            [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select, text

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP))

from harness import percentile  # noqa: E402

from directo.core.config import Config  # noqa: E402
from directo.core.embedded_redis import EmbeddedRedis  # noqa: E402
from directo.core.models import Agent, Base, Customer  # noqa: E402
from directo.core.services import Services  # noqa: E402
from directo.core.states import AgentStatus, Role  # noqa: E402
from routing.directory import lookup  # noqa: E402
from routing.policy import CallerProfile  # noqa: E402
from routing.presence import presence  # noqa: E402
from routing.router import route  # noqa: E402

BATCH = 50_000


def populate(svc: Services, agents: int, customers: int, rng: random.Random) -> list[str]:
    """Agents (available, in Redis) and customers who each spoke to one of them; returns the customers' numbers."""
    now = datetime.now(UTC)
    with svc.db.session() as session:
        session.execute(insert(Agent), [
            {"identity": f"agent{i:05d}", "name": f"Agent {i}", "languages_csv": "es,en",
             "status": AgentStatus.AVAILABLE, "role": Role.AGENT, "active": True, "created_at": now}
            for i in range(agents)])
    with svc.db.session() as session:
        rows = list(session.scalars(select(Agent)))
        for agent in rows:
            presence(svc).register(agent)
            presence(svc).transition(agent.identity, AgentStatus.AVAILABLE, since=time.time() - rng.random() * 3600)
        ids = [agent.id for agent in rows]
    numbers = [f"+346{n:08d}" for n in rng.sample(range(10**8), customers)]
    for start in range(0, customers, BATCH):
        with svc.db.session() as session:
            session.execute(insert(Customer), [
                {"phone": number, "language": "es", "last_agent_id": rng.choice(ids), "answered_calls": 1,
                 "created_at": now} for number in numbers[start:start + BATCH]])
    if svc.db.engine.dialect.name == "postgresql":
        with svc.db.engine.begin() as connection:
            connection.execute(text("ANALYZE"))
    return numbers


def decide(svc: Services, number: str, sid: str) -> tuple[float, str | None]:
    """One timed routing decision; the reserved agent is freed again afterwards (not timed)."""
    started = time.perf_counter()
    with svc.db.session() as session:
        caller = lookup(session, number, "es")
    chosen = route(presence(svc), sid, CallerProfile(caller.language, caller.previous_agent, frozenset()),
                   time.time()).agent
    elapsed = time.perf_counter() - started
    if chosen is not None:
        presence(svc).transition(chosen.identity, AgentStatus.AVAILABLE, expect_call=sid, since=time.time())
    return elapsed * 1000, chosen.identity if chosen else None


def measure(agents: int, customers: int, decisions: int, database_url: str, workdir: Path) -> dict[str, float]:
    rng = random.Random(agents)
    redis = EmbeddedRedis(workdir / f"redis-{agents}")
    env = {"DIRECTO_DATA_DIR": str(workdir), "REDIS_URL": redis.start(), "TWILIO_AUTH_TOKEN": "bench",
           "DATABASE_URL": database_url or f"sqlite:///{workdir / f'routing-{agents}.db'}"}
    svc = Services.build(Config.from_env(env))
    try:
        svc.db.migrate()
        if database_url:  # a shared PostgreSQL database: start each size empty
            with svc.db.engine.begin() as connection:
                names = ", ".join(t.name for t in reversed(Base.metadata.sorted_tables))
                connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        filling = time.perf_counter()
        numbers = populate(svc, agents, customers, rng)
        filled = time.perf_counter() - filling
        known = set(numbers)
        fresh = (f"+346{n:08d}" for n in rng.sample(range(10**8), decisions * 2) if f"+346{n:08d}" not in known)
        for i in range(200):  # warm-up: connections, prepared statements, Lua scripts
            decide(svc, rng.choice(numbers), f"CW{i:032d}")
        timings, routed = [], 0
        for i in range(decisions):
            number = rng.choice(numbers) if rng.random() < 0.8 else next(fresh)
            elapsed, agent = decide(svc, number, f"CA{i:032d}")
            timings.append(elapsed)
            routed += agent is not None
    finally:
        svc.close()
        redis.stop()
    return {"agents": agents, "customers": customers, "fill_s": filled, "p50": statistics.median(timings),
            "p99": percentile(timings, 99), "routed": routed / decisions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=3000, help="timed decisions per size")
    parser.add_argument("--sizes", default="10:1000,100:10000,1000:100000,10000:1000000",
                        help="agents:customers pairs, comma-separated")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file per size")
    args = parser.parse_args()
    sizes = [tuple(int(x) for x in pair.split(":")) for pair in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="directo-routing-"))
    results = [measure(agents, customers, args.decisions, args.database_url, workdir) for agents, customers in sizes]
    dialect = "postgresql" if args.database_url.startswith("postgres") else "sqlite"
    print(f"routing decision (lookup + route), {args.decisions} decisions per size, database {dialect}, "
          f"{os.cpu_count()} cores")
    print(f"{'agents':>8}{'customers':>12}{'fill s':>9}{'p50 ms':>9}{'p99 ms':>9}{'routed':>8}")
    for r in results:
        print(f"{r['agents']:>8}{r['customers']:>12}{r['fill_s']:>9.1f}{r['p50']:>9.3f}{r['p99']:>9.3f}"
              f"{r['routed']:>8.0%}")
    ratio = results[-1]["p50"] / results[0]["p50"]
    print(f"largest/smallest median: {ratio:.2f}x (target <= 1.5x): {'met' if ratio <= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
