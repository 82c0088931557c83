"""The outage drills' machinery: Directo as an operator runs it (gunicorn, `directo worker`, a real redis-server,
SQLite or PostgreSQL, behind a TCP proxy the drill can cut), a day of calls played through the simulator's Twilio
stand-in, and what the record says afterwards."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from conftest import ACCOUNT_SID, AUTH_TOKEN
from sqlalchemy import func, make_url, select

from directo.core.config import Config
from directo.core.db import fresh_database
from directo.core.embedded_redis import EmbeddedRedis
from directo.core.models import Call, Callback, Complaint, Recording
from directo.core.services import Services
from directo.simulate import Options, Simulation, Summary
from directo.simulate.run import OUR_NUMBER
from recordings.audit import verify

TOP = Path(__file__).resolve().parents[1]
# What each drill found, printed at the end of the run (tests/conftest.py).
FIGURES: list[tuple[str, dict[str, Any]]] = []
# Violations the simulator reports that mean something was lost; "agent given two calls" is counted apart.
LOSSES = ("call not recorded", "caller left without a person", "callback lost", "complaint without a reference",
          "complaint refused", "webhook failed", "invalid TwiML")


# Each request in gunicorn's access log: path, status and seconds taken, for the webhook figures. The drills serve
# the Flask app under gunicorn's gthread workers, whose access log times each request (uvicorn's, which `directo
# run` uses, does not): what they break and check (the database, Redis, the worker, the disk) is below the server.
ACCESS_FORMAT = "%(U)s %(s)s %(L)s"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TcpProxy:
    """A TCP relay the drill controls, between the app and PostgreSQL: `cut()` drops every connection and
    refuses new ones, as a network partition or a database restart does; `restore()` lets them through again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, upstream}
            threading.Thread(target=self._relay, args=(client, upstream), daemon=True).start()

    def _relay(self, a: socket.socket, b: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        try:
            while True:
                for key, _ in selector.select():
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            with self._lock:
                for sock in (a, b):
                    self._open.discard(sock)
                    sock.close()


@dataclass
class Stack:
    """Directo's processes, each started and stopped by the drill, and the test's own view of the record."""

    workdir: Path
    database_url: str  # what the app uses (through the proxy for PostgreSQL)
    direct_url: str  # what the drill reads the record with
    redis: EmbeddedRedis
    proxy: TcpProxy | None
    env: dict[str, str]
    web_url: str
    twilio_port: int
    svc: Services
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        log = (self.workdir / f"{name}.log").open("ab")
        if name == "web":
            command = [sys.executable, "-m", "gunicorn", "--bind", self.web_url.removeprefix("http://"),
                       "--workers", "2", "--threads", "8", "--worker-class", "gthread", "--log-level", "warning",
                       "--access-logfile", str(self.workdir / "access.log"), "--access-logformat", ACCESS_FORMAT,
                       "voice:create_app()"]
        else:
            command = [sys.executable, "-m", "directo.cli", "worker"]
        self.processes[name] = subprocess.Popen(command, cwd=TOP, env=self.env, stdout=log, stderr=log)

    def kill(self, name: str) -> None:
        """SIGKILL: no clean shutdown, whatever it was doing is left where it was."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()

    def wait_until_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(self.web_url + "/health", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "the web server did not come up"
            time.sleep(0.2)

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def webhook_figures(self) -> dict[str, Any]:
        """How Twilio's requests were answered over the drill: statuses, and the slowest answers in seconds."""
        lines = [line.split() for line in (self.workdir / "access.log").read_text().splitlines()]
        hooks = [(status, float(seconds)) for path, status, seconds in lines if path.startswith("/voice/")]
        took = sorted(seconds for _, seconds in hooks)
        statuses: dict[str, int] = {}
        for status, _ in hooks:
            statuses[status] = statuses.get(status, 0) + 1
        return {"webhooks answered, by status": statuses,
                "webhook seconds p50/p99/max": [round(took[int(q * (len(took) - 1))], 3) for q in (0.5, 0.99, 1)]}


@contextmanager
def stack(database_url: str, workdir: Path, **settings: str) -> Iterator[Stack]:
    """gunicorn, a worker and a private redis-server on a fresh database (PostgreSQL behind a TcpProxy)."""
    redis = EmbeddedRedis(workdir / "redis")
    with fresh_database(database_url, workdir) as direct:
        proxy = None
        app_url = direct
        if direct.startswith("postgresql"):
            url = make_url(direct)
            proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
            proxy.restore()
            app_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        web_url = f"http://127.0.0.1:{free_port()}"
        twilio_port = free_port()
        # A quick sweep, short wrap-ups and callbacks retried at once: the day settles inside the drill.
        env = dict(os.environ, REDIS_URL=redis.start(), DATABASE_URL=app_url, DIRECTO_DATA_DIR=str(workdir),
                   RECORDINGS_DIR=str(workdir / "recordings"), TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                   TWILIO_AUTH_TOKEN=AUTH_TOKEN, TWILIO_API_BASE_URL=f"http://127.0.0.1:{twilio_port}",
                   TWILIO_CALLER_ID=OUR_NUMBER, PUBLIC_BASE_URL=web_url, SWEEP_SECONDS="1", WRAPUP_SECONDS="2",
                   CALLBACK_RETRY_MINUTES="0", **settings)
        svc = Services.build(Config.from_env(dict(env, DATABASE_URL=direct)))
        svc.db.migrate()
        drill = Stack(workdir, app_url, direct, redis, proxy, env, web_url, twilio_port, svc)
        drill.start("web")
        drill.start("worker")
        try:
            drill.wait_until_up()
            yield drill
        finally:
            drill.stop_all()
            if proxy is not None:
                proxy.cut()
            svc.close()
            redis.stop()


@dataclass
class Day:
    """A simulated stretch of calls, run in the background while the drill breaks something."""

    simulation: Simulation
    thread: threading.Thread
    summary: Summary | None = None
    error: BaseException | None = None

    def finish(self, timeout: float) -> Summary:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the simulated day did not finish"
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary


@contextmanager
def day(drill: Stack, *, calls: int, agents: int = 6, rate: float = 2.0, complaint_rate: float = 0.3,
        settle_seconds: float = 240) -> Iterator[Day]:
    options = Options(base_url=drill.web_url, calls=calls, agents=agents, concurrency=calls, seed=14,
                      complaint_rate=complaint_rate, time_scale=0.02, twilio_port=drill.twilio_port, rate=rate,
                      settle_seconds=settle_seconds)
    with Simulation(drill.svc, options) as simulation:
        simulation.staff()
        running = Day(simulation, threading.Thread(target=lambda: None))

        def run() -> None:
            try:
                running.summary = simulation.run()
            except BaseException as error:  # reported by finish(), in the test's thread
                running.error = error

        running.thread = threading.Thread(target=run, name="drill-day", daemon=True)
        running.thread.start()
        yield running


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `condition` held; fails the drill after `timeout`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.2)
    return time.monotonic() - started


def calls_in_progress(simulation: Simulation) -> int:
    return sum(1 for root in simulation.roots if not root.ended)


def nothing_lost(drill: Stack, today: Day, summary: Summary, *, refusals_told: bool = False) -> dict[str, Any]:
    """The record after the drill, against what the phone network saw: every loss the simulator can see, each
    complaint texted and recorded once, no callback left pending. Returns the figures; asserts nothing was lost.

    `refusals_told`: while the database is cut an agent's complaint button is refused, and the agent is told (and
    may flag again); those are counted, not taken for losses, as long as their calls are on record afterwards.
    """
    refused = [f.call_sid for f in today.simulation.desk.flagged if f.error] if refusals_told else []
    losses = [f"{v.kind}: {v.detail}" for v in summary.violations
              if v.kind in LOSSES and not (v.kind == "complaint refused" and refusals_told)]
    overlaps = [v for v in summary.violations if v.kind not in LOSSES]
    with drill.svc.db.session() as session:
        chain = verify(session)
        references = session.scalars(select(Complaint.reference)).all()
        recordings = dict(session.execute(select(Recording.state, func.count()).group_by(Recording.state)).all())
        callbacks = dict(session.execute(select(Callback.state, func.count()).group_by(Callback.state)).all())
        recorded = session.scalar(select(func.count()).select_from(Call))
        unrecorded = [sid for sid in refused if session.scalar(select(Call.id).where(Call.call_sid == sid)) is None]
    delivered = [m.body for m in today.simulation.network.messages if m.status == "delivered"]
    texted = {reference: sum(reference in body for body in delivered) for reference in references}
    figures = {
        "calls": summary.calls, "answered by a person": summary.answered, "callbacks": summary.callbacks,
        "complaints": summary.complaints, "calls on record": recorded, "callbacks by state": callbacks,
        "recordings by state": recordings, "audit entries": chain.entries, "agents rung while busy": len(overlaps),
        **drill.webhook_figures(),
    }
    if refusals_told:
        figures["complaint flags refused while the record was cut (agent told)"] = len(refused)
    assert not unrecorded, f"calls whose complaint was refused are still not on record: {unrecorded}"
    assert chain.broken_at is None, f"audit chain broken at {chain.broken_at}: {chain.problem}"
    assert not losses, "\n".join(losses)
    assert all(count == 1 for count in texted.values()), f"each complaint texted exactly once: {texted}"
    assert set(recordings) <= {"stored"}, f"every acknowledgement recording stored: {recordings}"
    assert summary.callbacks["pending"] == 0, summary.callbacks
    return figures
