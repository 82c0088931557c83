"""Webhooks with 1,000 agents' live pages and 20 boards open on one web host, against none open, in the same run.

Starts the server as users do (`directo run`: gunicorn, 2 web processes, its worker) on a private Redis and a
fresh database, with 1,000 available agents and 20 supervisors. Signed calls arrive at a steady rate; each is
routed to a person, who talks for a moment and hangs up (dial-complete and status webhooks follow). Rounds without pages
alternate with rounds with every agent's page and every board open (held by another process, as browsers are),
and with rounds on today's main configuration before this change, so machine noise falls on all alike. Prints:

- `/voice/incoming` server time (its Server-Timing header) and client time, p50/p99, with 0 and with 1,020 streams;
- event delivery, p50/p99, for the agent's screen pop, the agent's presence, and each board's update: from the
  change (the Redis clock each carries) to the page receiving it, and from the call's webhook being sent;
- RSS per 100 open streams (the web processes' resident memory before and after opening them);
- for reference, today's main configuration before this change (gunicorn gthread 2 x 64 threads, no streams).

    .venv/bin/python bench/pages_load.py [--agents 1000] [--boards 20] [--rate 10] [--seconds 30] [--rounds 2]
        [--talk 2] [--database-url URL]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from harness import TOP, percentile, private_stack
from twilio.request_validator import RequestValidator

from directo.core.states import AgentStatus, CallStatus
from routing import agents as admin
from routing import roster

TOKEN = "bench-token"
SECRET = "bench-secret-key"


@dataclass(frozen=True)
class Call:
    sid: str
    agent: str | None
    sent: float  # time.time() when /voice/incoming was sent
    server_ms: float
    client_ms: float


def signed_post(url: str, params: dict[str, str]) -> requests.Response:
    """A new connection for each webhook, as Twilio's arrive (a kept one would meet the server's 2 s keep-alive)."""
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    response = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=30)
    response.raise_for_status()
    return response


def one_call(base: str, sid: str, caller: str, talk: float) -> Call:
    """A call as Twilio places it: routed to a person, who answers, talks for `talk` seconds and hangs up."""
    params = {"CallSid": sid, "From": caller, "To": "+34910000000", "AccountSid": "AC" + "0" * 32,
              "CallStatus": CallStatus.RINGING, "Direction": "inbound"}
    sent = time.time()
    started = time.perf_counter()
    response = signed_post(base + "/voice/incoming", params)
    client_ms = (time.perf_counter() - started) * 1000
    server_ms = float(response.headers["Server-Timing"].split("dur=")[1])
    agent = re.search(r"<Identity>([^<]+)</Identity>", response.text)
    if agent:
        time.sleep(talk)
        action = response.text.split('action="')[1].split('"')[0].replace("&amp;", "&")
        signed_post(action, {"CallSid": sid, "DialCallStatus": "completed", "DialCallDuration": "30",
                             "CallStatus": "in-progress"})
    signed_post(base + "/voice/status", {"CallSid": sid, "CallStatus": "completed", "CallDuration": "31"})
    return Call(sid, agent.group(1) if agent else None, sent, server_ms, client_ms)


def steady_calls(base: str, rate: float, seconds: float, sids: itertools.count, talk: float) -> list[Call]:
    """Calls started at a steady rate whatever the answers' times, as callers do."""
    total = int(rate * seconds)
    with ThreadPoolExecutor(max_workers=int(rate * (talk + 2)) + 16) as pool:
        start = time.perf_counter()
        futures = []
        for i in range(total):
            time.sleep(max(0.0, start + i / rate - time.perf_counter()))
            n = next(sids)
            futures.append(pool.submit(one_call, base, f"CA{n:032d}", f"+3460{n % 5000:07d}", talk))
        return [future.result() for future in futures]


def free_port() -> int:
    """A port nobody listens on (other benchmarks may be running on this machine)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_healthy(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(base + "/health", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base} did not come up")
        time.sleep(0.2)


def children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").glob("*/children") for child in task.read_text().split()]


def web_processes(run_pid: int) -> list[int]:
    """The web workers: the children of `directo run`'s gunicorn master."""
    [master] = [pid for pid in children(run_pid) if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    return children(master)


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time the processes have used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


# --- the pages, held by a process of their own --------------------------------------------------------


def hold_pages(base: str, commands: Any) -> None:
    """Child process: open the pages it is sent, hold them, and hand back every frame when asked."""
    import resource

    from directo.simulate.pages import Crowd, Page

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # a thousand sockets
    crowd: Crowd | None = None
    while True:
        command, payload = commands.recv()
        if command == "open":
            crowd = Crowd(base)
            pages = crowd.open(Page(person, board, cookie) for person, board, cookie in payload)
            crowd.wait_open(pages, timeout=180)
            retried = 0
            for attempt in range(3):  # as the page does: a refused stream (503) is tried again a moment later
                refused = [p for p in pages if p.status == 503]
                if not refused:
                    break
                retried += len(refused)
                time.sleep(2**attempt)
                again = crowd.open(Page(p.person, p.board, p.cookie) for p in refused)
                crowd.wait_open(again, timeout=180)
                pages = [p for p in pages if p.status != 503] + again
            commands.send(([(p.status, p.error[:200]) for p in pages], retried))
        elif command == "close":
            assert crowd is not None
            frames = [(p.person, p.board, [(f.event, f.data, f.event_id, f.at) for f in p.frames], p.ended,
                       p.heartbeats)
                      for p in crowd.pages if p.status == 200]
            crowd.close()
            crowd = None
            commands.send(frames)
        else:
            commands.send(None)
            return


KINDS = ("screen pop", "agent presence", "board update")
Delays = dict[str, tuple[list[float], list[float], int]]


def delivery(calls: list[Call], pages: list[tuple[str, bool, list[tuple[str, str, str | None, float]], bool, int]]
             ) -> Delays:
    """For each routed call and each page concerned: seconds from the change (the Redis clock it carries: a pop's
    log id, a state's version) to the page receiving it, and from the call's webhook being sent (an upper bound);
    and how many never arrived."""
    sent = {c.sid: c for c in calls if c.agent}
    found: dict[str, tuple[list[float], list[float]]] = {kind: ([], []) for kind in KINDS}

    def note(kind: str, changed_ms: float | None, sid: str, at: float) -> None:
        if changed_ms:
            found[kind][0].append(at - changed_ms / 1000)
        found[kind][1].append(at - sent[sid].sent)

    for person, board, frames, _, _ in pages:
        seen: set[tuple[str, str]] = set()
        for event, data, event_id, at in frames:
            rows = json.loads(data)
            if event == "message" and not board:
                sid = rows.get("call_sid")
                if sid in sent and sent[sid].agent == person and ("pop", sid) not in seen:
                    seen.add(("pop", sid))
                    note("screen pop", int((event_id or "0").split("-")[0]), sid, at)
            elif event == "state" and not board:
                sid = rows.get("call")
                if sid in sent and ("state", sid) not in seen:
                    seen.add(("state", sid))
                    note("agent presence", rows["v"], sid, at)
            elif event == "agents" and board:
                for row in rows:
                    sid = row.get("call")
                    if sid in sent and sent[sid].agent == row["identity"] and ("board", sid) not in seen:
                        seen.add(("board", sid))
                        note("board update", row.get("v"), sid, at)
    boards = sum(1 for _, board, *_ in pages if board)
    expected = {"screen pop": len(sent), "agent presence": len(sent), "board update": len(sent) * boards}
    return {kind: (*found[kind], expected[kind] - len(found[kind][1])) for kind in KINDS}


def describe(name: str, calls: list[Call]) -> str:
    server = [c.server_ms for c in calls]
    client = [c.client_ms for c in calls]
    routed = sum(1 for c in calls if c.agent)
    return (f"{name:<34}{percentile(server, 50):>10.2f}{percentile(server, 99):>10.2f}"
            f"{percentile(client, 50):>10.2f}{percentile(client, 99):>10.2f}{len(calls):>8}{routed:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--boards", type=int, default=20)
    parser.add_argument("--rate", type=float, default=10.0, help="new calls per second")
    parser.add_argument("--talk", type=float, default=2.0, help="seconds each call lasts")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each kind, alternating")
    parser.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    args = parser.parse_args()

    with private_stack(args.database_url, TWILIO_AUTH_TOKEN=TOKEN, SECRET_KEY=SECRET, WRAPUP_SECONDS="0") as (
            svc, env):
        from directo.simulate.pages import session_cookie

        started = time.perf_counter()
        people = []
        for i in range(args.agents):
            roster.add_agent(svc, f"agent{i:04d}", f"Agent {i}", ["es", "en"])
            admin.set_status(svc, f"agent{i:04d}", AgentStatus.AVAILABLE)
            people.append((f"agent{i:04d}", False, session_cookie(SECRET, f"agent{i:04d}")))
        for i in range(args.boards):
            roster.add_agent(svc, f"super{i:02d}", f"Supervisor {i}", ["es"], role="supervisor")
            people.append((f"super{i:02d}", True, session_cookie(SECRET, f"super{i:02d}")))
        print(f"{args.agents} agents and {args.boards} supervisors created in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
        dialect = svc.db.engine.dialect.name
        sids = itertools.count()
        port, reference_port = free_port(), free_port()
        base = f"http://127.0.0.1:{port}"

        # For reference, today's main before this change: gunicorn gthread, 2 x 64 threads, the Flask app alone
        # (pages held a thread each). It runs beside `directo run`, whose worker serves both, and takes its turn.
        reference = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{reference_port}", "--workers", "2",
             "--threads", "64", "--worker-class", "gthread", "--log-level", "warning", "--no-control-socket",
             "voice:create_app()"], cwd=TOP, env=env)
        run = subprocess.Popen([sys.executable, "-m", "directo.cli", "run", "--port", str(port)], cwd=TOP,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        context = multiprocessing.get_context("spawn")
        ours, theirs = context.Pipe()
        holder = context.Process(target=hold_pages, args=(base, theirs), daemon=True)
        holder.start()
        old = f"http://127.0.0.1:{reference_port}"
        try:
            wait_healthy(base)
            wait_healthy(old)
            for url in (old, base):
                steady_calls(url, args.rate, 5, sids, args.talk)  # warm-up
            before: list[Call] = []
            without: list[Call] = []
            with_pages: list[Call] = []
            delays: Delays = {kind: ([], [], 0) for kind in KINDS}
            rss: list[tuple[int, int]] = []
            opened_in: list[float] = []
            retries: list[int] = []
            cpu: dict[str, list[float]] = {"none": [], "pages": []}  # the web processes' cores busy, per round
            for _ in range(args.rounds):
                before += steady_calls(old, args.rate, args.seconds, sids, args.talk)
                workers = web_processes(run.pid)
                used = cpu_seconds(workers), time.perf_counter()
                without += steady_calls(base, args.rate, args.seconds, sids, args.talk)
                cpu["none"].append((cpu_seconds(workers) - used[0]) / (time.perf_counter() - used[1]))
                idle = rss_kib(workers)
                started = time.perf_counter()
                ours.send(("open", people))
                answers, retried = ours.recv()
                retries.append(retried)
                opened_in.append(time.perf_counter() - started)
                refused = [a for a in answers if a[0] != 200]
                assert not refused, f"{len(refused)} pages refused, e.g. {refused[:3]}"
                time.sleep(2)
                rss.append((idle, rss_kib(workers)))
                used = cpu_seconds(workers), time.perf_counter()
                calls = steady_calls(base, args.rate, args.seconds, sids, args.talk)
                cpu["pages"].append((cpu_seconds(workers) - used[0]) / (time.perf_counter() - used[1]))
                with_pages += calls
                time.sleep(2)  # the last changes reach the pages
                ours.send(("close", None))
                for kind, (changed, webhook, missing) in delivery(calls, ours.recv()).items():
                    known = delays[kind]
                    delays[kind] = (known[0] + changed, known[1] + webhook, known[2] + missing)
        finally:
            ours.send(("exit", None))
            holder.join(timeout=30)
            for process in (run, reference):
                process.terminate()
                process.wait(timeout=60)

    streams = args.agents + args.boards
    print(f"pages load: {args.agents} agents' pages + {args.boards} boards = {streams} streams, "
          f"{args.rate:g} calls/s, {args.rounds} x {args.seconds:g} s rounds of each, database {dialect}, "
          f"{os.cpu_count()} cores, load average before {os.getloadavg()[0]:.1f}")
    print(f"{'/voice/incoming':<34}{'srv p50':>10}{'srv p99':>10}{'cli p50':>10}{'cli p99':>10}{'calls':>8}"
          f"{'routed':>8}")
    print(describe("directo run, no pages open", without))
    print(describe(f"directo run, {streams} streams open", with_pages))
    print(describe("gthread 2x64 (before), no pages", before))
    ratio = percentile([c.server_ms for c in with_pages], 99) / percentile([c.server_ms for c in without], 99)
    client_ratio = (percentile([c.client_ms for c in with_pages], 99)
                    / percentile([c.client_ms for c in without], 99))
    print(f"p99 with {streams} streams open / with none: server {ratio:.2f}x, client {client_ratio:.2f}x "
          f"(target: within 2x) -> {'met' if max(ratio, client_ratio) <= 2 else 'NOT met'}")
    print(f"{'event delivery, ms':<22}{'from the change: p50':>21}{'p99':>8}{'max':>8}"
          f"{'from the webhook: p50':>23}{'p99':>8}{'count':>8}{'missed':>8}")
    for kind, (changed, webhook, missing) in delays.items():
        a = [v * 1000 for v in changed] or [float("nan")]
        b = [v * 1000 for v in webhook] or [float("nan")]
        print(f"{kind:<22}{percentile(a, 50):>21.1f}{percentile(a, 99):>8.1f}{max(a):>8.1f}"
              f"{percentile(b, 50):>23.1f}{percentile(b, 99):>8.1f}{len(webhook):>8}{missing:>8}")
    print(f"CPU of the web processes during the calls (cores busy): {', '.join(f'{c:.2f}' for c in cpu['none'])} "
          f"with no pages, {', '.join(f'{c:.2f}' for c in cpu['pages'])} with {streams} open")
    per_100 = [(after - before) / (streams / 100) / 1024 for before, after in rss]
    print(f"RSS of the web processes: {rss[-1][0] / 1024:.0f} MiB with no pages, {rss[-1][1] / 1024:.0f} MiB with "
          f"{streams} open: {', '.join(f'{v:.2f}' for v in per_100)} MiB per 100 streams (each round); "
          f"{streams} pages opened in {', '.join(f'{s:.1f}' for s in opened_in)} s (refused for a moment and "
          f"opened again, as a page does: {', '.join(str(n) for n in retries)})")


if __name__ == "__main__":
    main()
