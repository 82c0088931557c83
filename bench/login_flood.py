"""Does a login flood starve the calls? /voice/incoming latency while wrong passwords pour in, with the login
throttle off (limits too high to bite: how Directo was before) and on (the defaults), in the same run.

Runs the real app under gunicorn (as `directo run` does: 2 workers, gthread) on a private Redis and a fresh
database. Each failed login costs a password hash (scrypt, ~74 ms of CPU); the flood comes from one address,
trying the real agent's identity and made-up ones. Prints, for each setting, /voice/incoming's median and p99
(server and client time) quiet and under the flood, and what became of the flood's attempts (401: hashed, 429:
refused before hashing).

    .venv/bin/python bench/login_flood.py [--calls 100] [--flooders 16] [--database-url URL]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from harness import gunicorn, percentile, private_stack
from twilio.request_validator import RequestValidator

from directo.core.states import AgentStatus, CallStatus
from routing import agents as admin
from routing import roster

TOKEN = "bench-token"
UNLIMITED = "1000000 per 1 second"
TWILIO_WAITS = 15  # seconds: past this Twilio gives up on the webhook (error 11205)
SETTINGS = {"throttle off (as before)": {"LOGIN_FAILURES_PER_IDENTITY": UNLIMITED,
                                         "LOGIN_FAILURES_PER_ADDRESS": UNLIMITED},
            "throttle on (defaults)": {}}


def incoming(base: str, sid: str, caller: int) -> tuple[float, float] | None:
    """(server ms, client ms) of one routed call; None when it failed or took longer than Twilio waits (15 s)."""
    url = base + "/voice/incoming"
    params = {"CallSid": sid, "From": f"+3460{caller:07d}", "To": "+34910000000", "AccountSid": "AC" + "0" * 32,
              "CallStatus": CallStatus.RINGING, "Direction": "inbound"}
    headers = {"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, params)}
    started = time.perf_counter()
    try:
        response = requests.post(url, data=params, headers=headers, timeout=TWILIO_WAITS)
    except requests.Timeout:
        return None
    client_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        return None
    status = {"CallSid": sid, "CallStatus": "completed", "AccountSid": "AC" + "0" * 32}
    with contextlib.suppress(requests.Timeout):  # the caller hangs up, the agent is free (if it arrives in time)
        requests.post(base + "/voice/status", data=status, timeout=60, headers={
            "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(base + "/voice/status", status)})
    return float(response.headers["Server-Timing"].split("dur=")[1]), client_ms


def flood(base: str, stop: threading.Event, outcomes: Counter, lock: threading.Lock) -> None:
    """One attacker's connection: the login form once (for its CSRF token), then wrong passwords until stopped."""
    browser = requests.Session()
    token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(base + "/agent/login").text).group(1)
    for n in itertools.count():
        if stop.is_set():
            return
        identity = "ana" if n % 2 else f"guess{n}"
        try:
            status: int | str = browser.post(base + "/agent/login", data={
                "identity": identity, "password": f"wrong {n}", "csrf_token": token}, timeout=60).status_code
        except requests.Timeout:
            status = "timeout"
        with lock:
            outcomes[status] += 1


def measure(args: argparse.Namespace, env: dict[str, str]) -> dict[str, object]:
    sids = itertools.count()
    with gunicorn("voice.web:create_web_app()", args.port, env) as base:

        def calls(count: int) -> list[tuple[float, float] | None]:
            with ThreadPoolExecutor(max_workers=2) as pool:
                return list(pool.map(lambda i: incoming(base, f"CA{next(sids):032d}", i % 500), range(count)))

        calls(50)  # warm-up
        quiet = calls(args.calls)
        stop, outcomes, lock = threading.Event(), Counter(), threading.Lock()
        attackers = [threading.Thread(target=flood, args=(base, stop, outcomes, lock)) for _ in range(args.flooders)]
        for attacker in attackers:
            attacker.start()
        time.sleep(2)  # the flood is under way
        started = time.perf_counter()
        flooded = calls(args.calls)
        seconds = time.perf_counter() - started
        stop.set()
        for attacker in attackers:
            attacker.join()
        return {"quiet": quiet, "flooded": flooded, "outcomes": outcomes, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100, help="calls measured quiet, and again under the flood")
    parser.add_argument("--flooders", type=int, default=16, help="concurrent connections sending wrong passwords")
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    parser.add_argument("--port", type=int, default=5098)
    args = parser.parse_args()

    results = {}
    for name, limits in SETTINGS.items():
        with private_stack(args.database_url, TWILIO_AUTH_TOKEN=TOKEN, WRAPUP_SECONDS="0", **limits) as (svc, env):
            roster.add_agent(svc, "ana", "Ana", ["es"])
            roster.set_password(svc, "ana", "correct horse battery")
            for i in range(args.agents):
                roster.add_agent(svc, f"agent{i:03d}", f"Agent {i}", ["es", "en"])
                admin.set_status(svc, f"agent{i:03d}", AgentStatus.AVAILABLE)
            results[name] = measure(args, env)
            dialect = svc.db.engine.dialect.name

    print(f"login flood: {args.flooders} connections of wrong passwords from one address; /voice/incoming measured "
          f"{args.calls} times quiet and under the flood, 2 at a time; database {dialect}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'setting':<26}{'':<9}{'server p50':>11}{'server p99':>11}{'client p50':>11}{'client p99':>11}"
          f"{'logins/s':>10}{'hashed':>8}{'refused':>8}")
    for name, result in results.items():
        for phase in ("quiet", "flooded"):
            rows = [row for row in result[phase] if row is not None]
            lost = len(result[phase]) - len(rows)
            server, client = [r[0] for r in rows] or [float("nan")], [r[1] for r in rows] or [float("nan")]
            tail = ""
            if phase == "flooded":
                outcomes = result["outcomes"]
                tail = (f"{sum(outcomes.values()) / result['seconds']:>10.0f}{outcomes[401]:>8}"
                        f"{outcomes[429]:>8}")
            print(f"{name if phase == 'quiet' else '':<26}{phase:<9}{statistics.median(server):>11.2f}"
                  f"{percentile(server, 99):>11.2f}{statistics.median(client):>11.2f}"
                  f"{percentile(client, 99):>11.2f}{tail}{f'   {lost} calls failed or over 15 s' if lost else ''}")
    print("(ms; hashed: attempts answered 401 after a password hash; refused: 429 before any hashing; a call over "
          "15 s is one Twilio gave up on)")


if __name__ == "__main__":
    main()
