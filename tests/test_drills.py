"""Outage drills with real processes: gunicorn, `directo worker`, redis-server, SQLite or PostgreSQL, and a day
of calls through the simulator's Twilio stand-in. Something breaks mid-day; afterwards nothing may be lost (every
call on record, every callback and complaint step done once), and the figures are printed at the end of the run.
They take minutes (the sweep waits out a dead job before redoing it): `-m "not drill"` leaves them out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from drills import FIGURES, calls_in_progress, day, nothing_lost, stack, wait_for
from rq import Queue

pytestmark = [pytest.mark.drill, pytest.mark.timeout(900)]


def once(database_url: str) -> None:
    """Drills that are not about the database run once: on PostgreSQL (production's) when the suite has one."""
    if database_url.startswith("sqlite") and os.environ.get("DATABASE_URL", "").startswith("postgres"):
        pytest.skip("run once, on PostgreSQL")


def test_redis_restarted_empty_mid_call(database_url, tmp_path) -> None:
    """No persistence, or a failover to a blank replica: presence, job queues and reservations are gone at once."""
    once(database_url)
    with stack(database_url, tmp_path) as drill, day(drill, calls=30) as today:
        wait_for(lambda: calls_in_progress(today.simulation) >= 4, 60, "calls in progress")
        in_progress = calls_in_progress(today.simulation)
        queued = Queue("directo", connection=drill.svc.redis).count
        started = time.monotonic()
        os.kill(int(drill.redis.pidfile.read_text()), signal.SIGKILL)
        wait_for(lambda: not drill.redis.alive(), 10, "redis-server to die")
        time.sleep(2)  # as long as a supervisor takes to restart it: calls meanwhile meet the outage fallback
        drill.redis.start()  # empty: the drill's Redis keeps nothing on disk
        down = time.monotonic() - started
        summary = today.finish(timeout=600)
        figures = nothing_lost(drill, today, summary)
    FIGURES.append((f"Redis restarted empty mid-call ({drill.svc.db.engine.dialect.name})", {
        "calls in progress when it died": in_progress, "jobs queued when it died": queued,
        "Redis down (s)": round(down, 2), **figures}))


def test_worker_killed_with_jobs_in_flight(database_url, tmp_path) -> None:
    """SIGKILL (the OOM killer, a host lost): jobs it had taken are neither finished nor failed."""
    once(database_url)
    with stack(database_url, tmp_path) as drill, day(drill, calls=30, complaint_rate=0.5) as today:
        queue = Queue("directo", connection=drill.svc.redis)
        wait_for(lambda: queue.started_job_registry.count + queue.count > 0, 120, "jobs in flight")
        in_flight = {"started": queue.started_job_registry.count, "queued": queue.count}
        drill.kill("worker")
        time.sleep(3)  # the jobs sit there with nobody working on them
        drill.start("worker")
        restarted = time.monotonic()
        summary = today.finish(timeout=600)
        settled = time.monotonic() - restarted
        figures = nothing_lost(drill, today, summary)
    FIGURES.append((f"worker SIGKILLed with jobs in flight ({drill.svc.db.engine.dialect.name})", {
        "jobs in flight when killed": in_flight, "seconds from restart to all settled": round(settled, 1),
        **figures}))


def test_database_unreachable_for_10_seconds(database_url, tmp_path) -> None:
    """PostgreSQL: the connection cut (every open one dropped, new ones refused) for 10 s. SQLite: the file
    locked by another process (a backup, a VACUUM) for 10 s."""
    with stack(database_url, tmp_path) as drill, day(drill, calls=30) as today:
        wait_for(lambda: calls_in_progress(today.simulation) >= 4, 60, "calls in progress")
        in_progress = calls_in_progress(today.simulation)
        placed_before = len(today.simulation.roots)
        if drill.proxy is not None:
            drill.proxy.cut()
            time.sleep(10)
            drill.proxy.restore()
        else:
            path = drill.direct_url.split("///", 1)[1]
            locker = subprocess.run([sys.executable, "-c", (
                "import sqlite3, sys, time\n"
                "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                "db.execute('BEGIN EXCLUSIVE'); time.sleep(10); db.execute('COMMIT')\n"), path], timeout=60)
            assert locker.returncode == 0
        during = len(today.simulation.roots) - placed_before
        summary = today.finish(timeout=600)
        figures = nothing_lost(drill, today, summary, refusals_told=True)
    FIGURES.append((f"database unreachable for 10 s ({drill.svc.db.engine.dialect.name})", {
        "calls in progress when it went": in_progress, "calls placed during the outage": during, **figures}))


def test_recordings_disk_full(database_url, tmp_path) -> None:
    """RECORDINGS_DIR on a filesystem with no space left; space comes back after the first failures."""
    once(database_url)
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(recordings)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mounted.stderr.strip()}): needs root in a host or a "
                    "privileged container")
    try:
        (recordings / "filler").write_bytes(b"\0" * 60_000)
        with stack(database_url, tmp_path) as drill, day(drill, calls=20, complaint_rate=0.8) as today:
            wait_for(lambda: "No space left on device" in drill.log("worker"), 300, "a recording failing to store")
            full_until = time.monotonic()
            subprocess.run(["mount", "-o", "remount,size=16m", str(recordings)], check=True)
            summary = today.finish(timeout=600)
            figures = nothing_lost(drill, today, summary)
            stored_after = time.monotonic() - full_until
            failures = drill.log("worker").count(": fetch failed")
    finally:
        subprocess.run(["umount", "-l", str(recordings)], check=False)
    FIGURES.append((f"recordings disk full ({drill.svc.db.engine.dialect.name})", {
        "recordings refused for space, then retried": failures, "seconds from space back to all settled":
        round(stored_after, 1), **figures}))
