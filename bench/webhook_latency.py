"""Server-side latency of /voice/incoming under concurrent calls, beside a trivial TwiML endpoint (the floor).

Runs the real app under gunicorn (as `directo run` does) on a private Redis and a fresh database, with agents
who finish each call at once, so every measured call is really routed to a person. Rounds of the floor and of
/voice/incoming alternate with rounds of the bound (bench/floor_app.py: the floor plus one Redis script and the
<Dial>, the least any routed call can cost), so machine noise falls on all alike. Prints median and p99 of the
app's own time (its Server-Timing header) and of the client-observed time.

    .venv/bin/python bench/webhook_latency.py [--calls 2000] [--concurrency 16] [--agents 100] [--database-url URL]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from harness import gunicorn, percentile, private_stack
from twilio.request_validator import RequestValidator

from directo.core.states import AgentStatus, CallStatus
from routing import agents as admin
from routing import roster

TOKEN = "bench-token"
_local = threading.local()


def session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def signed_post(url: str, params: dict[str, str]) -> tuple[float, float, str]:
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    started = time.perf_counter()
    response = session().post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=30)
    client_ms = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    server_ms = float(response.headers["Server-Timing"].split("dur=")[1])
    return server_ms, client_ms, response.text


def measure(
    args: argparse.Namespace, env: dict[str, str], throughput: dict[str, float]
) -> dict[str, list[tuple[float, float]]]:
    """The app under gunicorn, as `directo run` serves it; alternating rounds of the floor and /voice/incoming."""
    sids = itertools.count()

    def floor(_: int) -> tuple[float, float]:
        server_ms, client_ms, _ = signed_post(base + "/voice/bench/floor", {"CallSid": f"CAF{next(sids):031d}"})
        return server_ms, client_ms

    def bound(i: int) -> tuple[float, float]:
        server_ms, client_ms, _ = signed_post(base + "/voice/bench/bound", {"CallSid": f"CAB{next(sids):031d}",
                                                                       "From": f"+3460{i % args.callers:07d}"})
        return server_ms, client_ms

    def incoming(i: int) -> tuple[float, float]:
        sid = f"CA{next(sids):032d}"
        params = {"CallSid": sid, "From": f"+3460{i % args.callers:07d}", "To": "+34910000000",
                  "AccountSid": "AC" + "0" * 32, "CallStatus": CallStatus.RINGING, "Direction": "inbound"}
        server_ms, client_ms, body = signed_post(base + "/voice/incoming", params)
        if "<Dial" in body:  # the agent talks and hangs up, so they are free for the next caller
            action = body.split('action="')[1].split('"')[0].replace("&amp;", "&")
            signed_post(action, {"CallSid": sid, "DialCallStatus": CallStatus.COMPLETED, "DialCallDuration": "30",
                                 "CallStatus": CallStatus.IN_PROGRESS})
        return server_ms, client_ms

    with gunicorn("bench.floor_app:web", args.port, env) as base:
        steps = {"floor": floor, "bound": bound, "incoming": incoming}
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
        busy = dict.fromkeys(steps, 0.0)  # wall time spent on each endpoint's rounds, for throughput
        per_round = max(1, args.calls // args.rounds)
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            for step in steps.values():  # warm-up: connections, imports, caches
                list(pool.map(step, range(200)))
            for _ in range(args.rounds):
                for name, step in steps.items():
                    started = time.perf_counter()
                    results[name] += pool.map(step, range(per_round))
                    busy[name] += time.perf_counter() - started
        throughput.update({name: len(results[name]) / seconds for name, seconds in busy.items()})
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per endpoint")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--callers", type=int, default=500, help="distinct callers (the rest are repeat calls)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--port", type=int, default=5099)
    args = parser.parse_args()

    with private_stack(args.database_url, TWILIO_AUTH_TOKEN=TOKEN, WRAPUP_SECONDS="0") as (svc, env):
        for i in range(args.agents):
            roster.add_agent(svc, f"agent{i:05d}", f"Agent {i}", ["es", "en"])
            admin.set_status(svc, f"agent{i:05d}", AgentStatus.AVAILABLE)
        throughput: dict[str, float] = {}
        results = measure(args, env, throughput)
        dialect = svc.db.engine.dialect.name

    print(f"webhook latency: {args.calls} calls per endpoint, concurrency {args.concurrency}, "
          f"{args.agents} agents, {args.callers} callers, database {dialect}, "
          f"{os.cpu_count()} cores")
    print(f"{'endpoint':<18}{'server p50 ms':>14}{'server p99 ms':>14}{'client p50 ms':>14}{'client p99 ms':>14}"
          f"{'calls/s':>10}")
    medians = {}
    for name, rows in results.items():
        server = [r[0] for r in rows]
        client = [r[1] for r in rows]
        medians[name] = statistics.median(server)
        print(f"{name:<18}{medians[name]:>14.2f}{percentile(server, 99):>14.2f}"
              f"{statistics.median(client):>14.2f}{percentile(client, 99):>14.2f}{throughput[name]:>10.0f}")
    print("(calls/s: requests answered per second; for /voice/incoming each call also sends its dial-complete)")
    print(f"/voice/incoming median is {medians['incoming'] / medians['floor']:.2f}x the floor (target: within 2x); "
          f"the bound's is {medians['bound'] / medians['floor']:.2f}x")
    print("(bound: the floor plus one Redis script and the <Dial> a routed call answers with, no database: "
          "no handler that routes a call can be faster)")


if __name__ == "__main__":
    main()
