"""The failover drill, with real processes on this machine: Redis master, replica and three sentinels; PostgreSQL
behind PgBouncer in transaction mode; two web hosts (gunicorn) behind a load balancer (the stand-in's) and two
workers. Calls arrive at a steady rate; mid-run the Redis master is SIGKILLed, later one web host and one worker.
Nobody may pay for it: no agent with two calls, no caller left with nobody and no callback, no promise lost or kept
twice, every complaint with its reference, SMS and recording, the audit chain intact.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test ./run-tests -m drill -s
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from conftest import ACCOUNT_SID, AUTH_TOKEN
from failover_rig import DOWN_AFTER_MS, free_port, pgbouncer, pgbouncer_executable, sentinel_group, wait_for
from rq import Worker
from sqlalchemy import select

from directo.core.config import Config
from directo.core.db import fresh_database
from directo.core.models import Call, CallEvent, Complaint
from directo.core.periodic import RECONCILE_SECONDS
from directo.core.services import Services, redis_client
from directo.core.states import CallOutcome, Direction, RecordingState, SmsState
from directo.simulate import Options, Simulation
from directo.simulate.people import Habits
from directo.simulate.run import OUR_NUMBER
from recordings import audit
from routing import roster

pytestmark = [pytest.mark.drill, pytest.mark.timeout(600)]

TOP = Path(__file__).resolve().parents[1]
AGENTS = 8
CALLS = 70
RATE = 1.3  # calls a second: a little more than eight agents take with these habits, so callbacks are promised
TIME_SCALE = 0.05  # a two-minute conversation lasts 6 s
# Some customers do not pick up their callback: the agent stays held until their own leg ends (issue 17).
HABITS = Habits(ring=(2.0, 6.0), talk=(30.0, 120.0), wrapup=(2.0, 6.0), back_at_desk=(10.0, 30.0))
COMPLAINT_RATE = 0.15
MASTER_DIES_AT = 15.0  # seconds into the run
HOST_DIES_AT = 35.0
TARGET_SECONDS = 10.0  # routing normally again this soon after the master's death
# An incoming call's decision on the live state: an agent reserved, or nobody free and a callback promised; the
# other way is the outage fallback, every agent rung at once.
DECISIONS = ("agent-reserved", "no-person", "fallback")
WATCHED_AGENT, PASSWORD = "sim-01", "drill-password"


def _database() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres", "postgresql")):
        pytest.skip("the drill runs PostgreSQL behind PgBouncer: set DATABASE_URL to a PostgreSQL server "
                    "(./run-tests does when one answers on 127.0.0.1:5432)")
    if pgbouncer_executable() is None:
        pytest.skip("pgbouncer is not installed and could not be (./run-tests installs Debian's when run as root)")
    return url


@dataclass
class Host:
    """One machine of the deployment: its web process (gunicorn) and its worker, each a process group."""

    name: str
    web_url: str
    processes: list[subprocess.Popen]

    @classmethod
    def start(cls, name: str, env: dict[str, str], logs: Path) -> Host:
        port = free_port()
        data = logs / name
        data.mkdir()
        env = dict(env, DIRECTO_DATA_DIR=str(data))
        web = [sys.executable, "-m", "gunicorn", "--config", "python:voice.gunicorn_conf", "--bind",
               f"127.0.0.1:{port}", "--workers", "1", "--log-level", "warning"]
        worker = [sys.executable, "-m", "directo.cli", "worker", "--verbose"]  # the periodic runs are read from the log
        processes = [subprocess.Popen(argv, cwd=TOP, env=env, start_new_session=True, stderr=subprocess.STDOUT,
                                      stdout=(logs / f"{name}-{kind}.log").open("ab"))
                     for kind, argv in (("web", web), ("worker", worker))]
        return cls(name, f"http://127.0.0.1:{port}", processes)

    def up(self) -> bool:
        assert all(p.poll() is None for p in self.processes), f"{self.name} died while starting"
        try:
            return requests.get(self.web_url + "/health", timeout=1).ok
        except requests.RequestException:
            return False

    def kill(self) -> None:
        """SIGKILL, every process of the host at once (gunicorn's workers, RQ's scheduler and work horses too)."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def test_failover_drill(tmp_path, record_property, capsys) -> None:
    database_url = _database()
    twilio_port = free_port()
    public = f"http://127.0.0.1:{free_port()}"  # the load balancer's address: nothing listens there
    with ExitStack() as stack:
        group = stack.enter_context(sentinel_group(_dir(tmp_path, "redis")))
        direct = stack.enter_context(fresh_database(database_url, tmp_path))
        pooled = stack.enter_context(pgbouncer(direct))
        env = dict(os.environ, REDIS_URL=group.url, DATABASE_URL=pooled, DATABASE_DIRECT_URL=direct,
                   TWILIO_ACCOUNT_SID=ACCOUNT_SID, TWILIO_AUTH_TOKEN=AUTH_TOKEN, SECRET_KEY="drill-secret",
                   TWILIO_API_BASE_URL=f"http://127.0.0.1:{twilio_port}", TWILIO_CALLER_ID=OUR_NUMBER,
                   PUBLIC_BASE_URL=public, RECORDINGS_DIR=str(tmp_path / "recordings"), WRAPUP_SECONDS="10",
                   SWEEP_SECONDS="2")
        logs = _dir(tmp_path, "logs")
        hosts = [Host.start(f"host{n}", env, logs) for n in (1, 2)]
        for host in hosts:
            stack.callback(host.stop)
        wait_for(lambda: all(host.up() for host in hosts), 90, "both web hosts answering")
        redis = redis_client(group.url, socket_connect_timeout=0.5)
        wait_for(lambda: len(Worker.all(connection=redis)) >= 2, 90, "both workers listening")

        svc = Services.build(Config.from_env(dict(env, DIRECTO_DATA_DIR=str(_dir(tmp_path, "simulator")))))
        stack.callback(svc.close)
        options = Options(base_url=public, upstreams=tuple(host.web_url for host in hosts), calls=CALLS,
                          agents=AGENTS, rate=RATE, concurrency=40, complaint_rate=COMPLAINT_RATE,
                          time_scale=TIME_SCALE, twilio_port=twilio_port, settle_seconds=60, habits=HABITS, seed=15)
        simulation = stack.enter_context(Simulation(svc, options))
        simulation.staff()
        roster.set_password(svc, WATCHED_AGENT, PASSWORD)
        page = requests.Session()
        _log_in(page, hosts[0].web_url)

        outcome: dict[str, Any] = {}
        runner = threading.Thread(target=_run, args=(simulation, outcome), name="drill-run")
        started = time.time()
        runner.start()
        _sleep_until(started + MASTER_DIES_AT)
        old, master_died = group.kill_master()
        group.wait_failover(old)
        failed_over = time.time()
        _sleep_until(started + HOST_DIES_AT)
        hosts[0].kill()
        host_died = time.time()
        # The agent page's stream, from the web host still standing (logged in on the one that died).
        pops = _screen_pops(page, hosts[1].web_url, WATCHED_AGENT, seconds=25)
        runner.join(timeout=600)
        assert not runner.is_alive(), "the simulated day never ended"
        if "error" in outcome:
            raise outcome["error"]
        summary = outcome["summary"]
        wait_for(lambda: _complaints_settled(svc), 120, "every complaint's SMS delivered and recording stored")

        figures = _figures(svc, simulation, master_died, failed_over, host_died)
        figures["periodic_runs"] = runs = _periodic_runs(logs)
        figures.update(calls=summary.calls, answered=summary.answered, callbacks=summary.callbacks,
                       complaints=summary.complaints, webhooks=summary.webhooks, screen_pops_after_host_died=pops,
                       down_after_milliseconds=DOWN_AFTER_MS, load_average=os.getloadavg()[0])
        record_property("drill", json.dumps(figures))
        (tmp_path / "drill.json").write_text(json.dumps(figures, indent=2, default=str))
        with capsys.disabled():
            print("\n" + _report(figures) + "\n" + summary.text())

        assert summary.violations == [], summary.text() + "\n" + _timelines(svc, simulation, summary.violations)
        assert figures["callbacks_placed_twice"] == [] and figures["callback_calls_unrecorded"] == []
        assert figures["complaints_incomplete"] == [], "every complaint: reference, spoken, SMS, recording"
        assert figures["audit_intact"], "the audit chain"
        assert len(runs["prune"]) == 1, f"the hourly job ran once across failover and workers: {runs}"
        assert all(gap >= RECONCILE_SECONDS / 2 for gap in _gaps(runs["reconcile"])), f"once a minute: {runs}"
        assert figures["served_by_each_web_host"][hosts[1].web_url] > 0 and len(figures["served_by_each_web_host"]) == 2
        assert pops >= 1, "the agent page's stream, served by the other web host, showed the next call"
        assert figures["seconds_to_routing_again"] is not None
        assert figures["seconds_to_routing_again"] <= TARGET_SECONDS, _report(figures)


def _dir(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir(exist_ok=True)
    return path


def _run(simulation: Simulation, outcome: dict[str, Any]) -> None:
    try:
        outcome["summary"] = simulation.run()
    except BaseException as error:  # handed to the test's thread, which raises it
        outcome["error"] = error


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.time()))


def _log_in(page: requests.Session, web_url: str) -> None:
    form = page.get(web_url + "/agent/login", timeout=10).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    answer = page.post(web_url + "/agent/login", data={"identity": WATCHED_AGENT, "password": PASSWORD,
                                                       "csrf_token": token}, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text


def _screen_pops(page: requests.Session, web_url: str, identity: str, seconds: float) -> int:
    """Whether the agent page's event stream delivered a screen pop (a call or a callback) within `seconds`."""
    pops, deadline = 0, time.monotonic() + seconds
    with page.get(web_url + "/agent/events", stream=True, timeout=(5, seconds + 5)) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines(decode_unicode=True):
            if line.startswith("data:") and "-reserved" in line and f'"agent": "{identity}"' in line:
                pops += 1
                break
            if time.monotonic() > deadline:
                break
    return pops


def _periodic_runs(logs: Path) -> dict[str, list[int]]:
    """When each worker started the hourly and the per-minute periodic jobs, read from both workers' logs (RQ
    names each job it starts, to the second): seconds since midnight, in order."""
    runs: dict[str, list[int]] = {"prune": [], "reconcile": []}
    for log in logs.glob("host*-worker.log"):
        for line in log.read_text(errors="replace").splitlines():
            for name, job in (("prune", "prune_old_receipts()"), ("reconcile", "reconcile_agents()")):
                if re.match(r"\d\d:\d\d:\d\d Worker .*: directo: ", line) and job in line:
                    hours, minutes, seconds = (int(part) for part in line[:8].split(":"))
                    runs[name].append(hours * 3600 + minutes * 60 + seconds)
    return {name: sorted(times) for name, times in runs.items()}


def _complaints_settled(svc: Services) -> bool:
    return not _incomplete_complaints(svc)


def _incomplete_complaints(svc: Services) -> list[str]:
    with svc.db.session() as session:
        complaints = session.scalars(select(Complaint)).all()
        return [f"{c.id} {c.reference}" for c in complaints
                if not c.reference or c.spoken_at is None or c.recording is None
                or c.recording.state != RecordingState.STORED
                or not any(m.state == SmsState.DELIVERED for m in c.messages)]


def _utc(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def _figures(svc: Services, simulation: Simulation, master_died: float, failed_over: float,
             host_died: float) -> dict[str, Any]:
    """What the drill records, read from the database (the system of record) and the stand-in (the network)."""
    died = _utc(master_died)
    with svc.db.session() as session:
        waits = session.execute(
            select(CallEvent.at, Call.started_at).join(Call, Call.id == CallEvent.call_id)
            .where(Call.direction == Direction.INBOUND, Call.started_at >= died, CallEvent.kind == "incoming")).all()
        after = session.execute(
            select(CallEvent.call_id, CallEvent.kind, CallEvent.at).join(Call, Call.id == CallEvent.call_id)
            .where(Call.direction == Direction.INBOUND, Call.started_at >= died,
                   CallEvent.kind.in_(DECISIONS))).all()
        attempts = defaultdict(set)
        for callback_id, call_sid in session.execute(
                select(Call.callback_id, Call.call_sid).where(Call.direction == Direction.CALLBACK)):
            attempts[callback_id].add(call_sid)
        verification = audit.verify(session)
        fallback_outcomes = session.scalars(select(Call.call_sid).where(Call.outcome == CallOutcome.FALLBACK)).all()
    fallback = {call_id for call_id, kind, _ in after if kind == "fallback"}
    routed = sorted(at for call_id, kind, at in after if call_id not in fallback)
    legs: dict[int, list] = defaultdict(list)
    for leg in simulation.network.calls:
        target = leg.status_callback.url if leg.status_callback is not None else ""
        callback = parse_qs(urlsplit(target).query).get("callback")
        if leg.direction == "outbound-api" and callback and leg.to.startswith("client:"):
            legs[int(callback[0])].append(leg)
    twice = [cid for cid, placed in legs.items() if _overlap(placed)]
    unrecorded = [leg.sid for cid, placed in legs.items() for leg in placed if leg.sid not in attempts[cid]]
    served: dict[str, int] = defaultdict(int)
    for root in simulation.roots:
        for event in root.webhooks():
            if event.get("served_by"):
                served[event["served_by"].split("/voice")[0].split("/media")[0]] += 1
    return {
        "master_died_at": died.isoformat(),
        "seconds_to_failover": round(failed_over - master_died, 2),
        "seconds_to_routing_again": round((routed[0] - died).total_seconds(), 2) if routed else None,
        "calls_routed_after_master_died": len(routed),
        "calls_arriving_during_failover": sum(1 for _, started in waits if started <= _utc(failed_over)),
        # From the webhook's arrival to its decision: what a caller spent hearing it ring before an agent was chosen.
        "longest_decision_seconds_after_master_died": round(max(((at - started).total_seconds()
                                                                 for at, started in waits), default=0.0), 2),
        "calls_on_fallback_path": len(fallback),
        "fallback_calls_in_all": len(fallback_outcomes),
        "web_host_and_worker_killed_at_second": round(host_died - master_died + MASTER_DIES_AT, 1),
        "callbacks_placed_twice": twice,
        "callback_calls_unrecorded": unrecorded,
        "complaints_incomplete": _incomplete_complaints(svc),
        "audit_intact": verification.intact,
        "audit_entries": verification.entries,
        "served_by_each_web_host": dict(served),
    }


def _timelines(svc: Services, simulation: Simulation, violations: list) -> str:
    """For each leg a violation names: the call it belongs to, as the network and the database saw it."""
    lines = []
    for sid in sorted({sid for v in violations for sid in re.findall(r"CA[0-9a-f]{32}", v.detail)}):
        leg = simulation.network.call(sid)
        if leg is None:
            continue
        root = leg.root
        lines.append(f"leg {sid} to {leg.to}: created {leg.created_at:.1f}, ended {leg.ended_at}, {leg.status}; "
                     f"call {root.sid} ({root.direction}, from {root.from_})")
        with svc.db.session() as session:
            call = session.scalar(select(Call).where(Call.call_sid == root.sid))
            if call is None:
                continue
            lines.append(f"  record {call.id}: {call.direction} {call.outcome} started {call.started_at} "
                         f"agent {call.agent_id} callback {call.callback_id}")
            events = session.scalars(select(CallEvent).where(CallEvent.call_id == call.id).order_by(CallEvent.id))
            lines += [f"    {event.at.time()} {event.kind} {event.detail}" for event in events]
    return "\n".join(lines)


def _overlap(legs: list) -> bool:
    ordered = sorted(legs, key=lambda leg: leg.created_at)
    return any(after.created_at < (before.ended_at if before.ended_at is not None else float("inf"))
               for before, after in zip(ordered, ordered[1:], strict=False))


def _report(figures: dict[str, Any]) -> str:
    return (f"DRILL: master SIGKILLed; sentinels failed over in {figures['seconds_to_failover']} s "
            f"(down-after-milliseconds {figures['down_after_milliseconds']}); calls routed normally again "
            f"{figures['seconds_to_routing_again']} s after its death (target {TARGET_SECONDS:.0f} s); "
            f"{figures['calls_on_fallback_path']} calls took the fallback path meanwhile (longest wait for a "
            f"decision {figures['longest_decision_seconds_after_master_died']} s); a web host and a worker "
            f"SIGKILLed at second {figures['web_host_and_worker_killed_at_second']}; webhooks per web host "
            f"{figures['served_by_each_web_host']}; hourly job runs {len(figures['periodic_runs']['prune'])}, "
            f"per-minute job runs {len(figures['periodic_runs']['reconcile'])} "
            f"(seconds apart: {_gaps(figures['periodic_runs']['reconcile'])}); "
            f"load average {figures['load_average']:.1f}")


def _gaps(times: list[int]) -> list[int]:
    return [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
