"""A sustained call rate for N minutes against the real server, through `directo simulate`: zero invariant
violations allowed, and the throughput it held.

Runs the app under gunicorn and a `directo worker` (as `directo run` does) on a private Redis and a fresh
database, with the simulator's Twilio stand-in as the server's Twilio. Calls arrive at --rate per second from
a population of new and repeat callers; agents answer, talk, wrap up, sometimes miss a call, flag complaints.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 2 | --overload N] [--agents 20] [--database-url URL]

`--overload N`: callers arrive at N times what the agents can take (their handling time: rings, talk, wrap-up),
instead of at --rate; most are then promised a callback, and the agents spend the run keeping those promises.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP))

from harness import wait_until_up  # noqa: E402

from directo.core.config import Config  # noqa: E402
from directo.core.embedded_redis import EmbeddedRedis  # noqa: E402
from directo.core.services import Services  # noqa: E402
from directo.simulate import Options, Simulation  # noqa: E402
from directo.simulate.people import Habits  # noqa: E402
from directo.simulate.run import OUR_NUMBER  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=2.0, help="new calls per second")
    parser.add_argument("--overload", type=float, help="callers at N times what the agents can take (not --rate)")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=60, help="most calls in progress at once")
    parser.add_argument("--complaint-rate", type=float, default=0.02)
    parser.add_argument("--time-scale", type=float, default=0.02)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--port", type=int, default=5098)
    parser.add_argument("--twilio-port", type=int, default=5082)
    args = parser.parse_args()
    if args.overload:
        args.rate = args.overload * args.agents / (Habits().handling_seconds * args.time_scale)

    workdir = Path(tempfile.mkdtemp(prefix="directo-soak-"))
    redis = EmbeddedRedis(workdir / "redis")
    base = f"http://127.0.0.1:{args.port}"
    env = dict(os.environ, TWILIO_AUTH_TOKEN="soak-token", REDIS_URL=redis.start(), DIRECTO_DATA_DIR=str(workdir),
               DATABASE_URL=args.database_url or f"sqlite:///{workdir / 'soak.db'}", PUBLIC_BASE_URL=base,
               TWILIO_API_BASE_URL=f"http://127.0.0.1:{args.twilio_port}", TWILIO_CALLER_ID=OUR_NUMBER)
    svc = Services.build(Config.from_env(env))
    svc.db.migrate()
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:voice.gunicorn_conf", "--bind", f"127.0.0.1:{args.port}",
         "--workers", "2", "--log-level", "warning"], cwd=TOP, env=env, **quiet)
    worker = subprocess.Popen([sys.executable, "-m", "directo.cli", "worker"], cwd=TOP, env=env, **quiet)
    calls = max(1, int(args.rate * args.minutes * 60))
    options = Options(base_url=base, calls=calls, agents=args.agents, concurrency=args.concurrency,
                      complaint_rate=args.complaint_rate, time_scale=args.time_scale, twilio_port=args.twilio_port,
                      rate=args.rate, settle_seconds=60)
    try:
        wait_until_up(base)
        started = time.monotonic()
        with Simulation(svc, options) as simulation:
            summary = simulation.run()
        elapsed = time.monotonic() - started
    finally:
        for process in (server, worker):
            process.terminate()
            process.wait(timeout=30)
        svc.close()
        redis.stop()

    print(f"soak: {calls} calls at {args.rate:.2f}/s"
          + (f" ({args.overload:g}x what the agents can take)" if args.overload else "")
          + f" for {args.minutes} min, {args.agents} agents, database "
          f"{svc.db.engine.dialect.name}, time scale {args.time_scale}, {os.cpu_count()} cores")
    print(f"wall {elapsed:.0f} s; {calls / elapsed:.2f} calls/s and {summary.webhooks / elapsed:.1f} webhooks/s "
          f"sustained; {summary.run['simulated_seconds'] / 3600:.1f} simulated hours")
    print(summary.text())
    print(f"invariant violations: {len(summary.violations)}")
    sys.exit(1 if summary.violations else 0)


if __name__ == "__main__":
    main()
