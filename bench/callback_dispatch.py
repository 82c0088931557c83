"""From an agent becoming available to the callback's call request reaching Twilio, with 1,000 callbacks queued.

A real `directo worker` process (RQ's forking worker, as in production) places the calls through the real
twilio client against the local stand-in. Each trial takes a fresh agent from offline to available (which
dispatches at once) and times until the stand-in has received the Calls POST for that agent.

    .venv/bin/python bench/callback_dispatch.py [--queued 1000] [--trials 40] [--database-url URL]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta

from harness import TOP, percentile, private_stack
from sqlalchemy import insert

from directo.core.models import Callback, utcnow
from directo.core.states import AgentStatus, CallbackState
from routing import agents as admin
from routing import roster
from standin import NoAnswer, StandIn

TOKEN = "bench-token"
ACCOUNT = "AC" + "b" * 32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    with StandIn(account_sid=ACCOUNT, auth_token=TOKEN, time_scale=0.01) as standin, private_stack(
        args.database_url, TWILIO_AUTH_TOKEN=TOKEN, TWILIO_ACCOUNT_SID=ACCOUNT, TWILIO_API_BASE_URL=standin.base_url,
        TWILIO_CALLER_ID="+34910000000", PUBLIC_BASE_URL="http://127.0.0.1:9",
    ) as (svc, env):
        standin.network.default_behaviour = NoAnswer()
        now = utcnow()
        with svc.db.session() as session:
            session.execute(insert(Callback), [
                {"phone": f"+3460{i:07d}", "language": "es", "state": CallbackState.QUEUED, "attempts": 0,
                 "queued_at": now - timedelta(seconds=args.queued - i), "due_at": now - timedelta(seconds=1),
                 "promised_by": now + timedelta(minutes=15)}
                for i in range(args.queued)
            ])
        for i in range(args.trials):
            roster.add_agent(svc, f"agent{i:03d}", f"Agent {i}", ["es"])
        worker = subprocess.Popen([sys.executable, "-m", "directo.cli", "worker"], cwd=TOP, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            time.sleep(3)  # the worker is up and listening
            latencies = []
            for i in range(args.trials):
                target = f"client:agent{i:03d}"
                started = time.perf_counter()
                admin.set_status(svc, f"agent{i:03d}", AgentStatus.AVAILABLE)
                while not standin.network.legs_to(target):
                    if time.perf_counter() - started > 30:
                        raise RuntimeError(f"no call reached the stand-in for {target}")
                    time.sleep(0.001)
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            worker.terminate()
            worker.wait(timeout=30)
    print(f"callback dispatch: {args.queued} callbacks queued, {args.trials} agents becoming available one by one, "
          f"database {svc.db.engine.dialect.name}, {os.cpu_count()} cores")
    print(f"agent available → Calls POST at the stand-in: p50 {statistics.median(latencies):.0f} ms, "
          f"p95 {percentile(latencies, 95):.0f} ms, max {max(latencies):.0f} ms (target: p95 under 1000 ms)")


if __name__ == "__main__":
    main()
