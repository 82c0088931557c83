"""The real `directo worker` process: a job queued after a quiet spell runs at once."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import wait_until_listening, worker_env
from rq.job import JobStatus


def test_a_job_queued_after_the_worker_sat_idle_runs_at_once(services) -> None:
    """Nights are quiet: the first callback or complaint SMS of the morning must not wait for the worker.

    RQ's worker blocks on Redis for minutes waiting for a job. On a connection that gives up reading after a
    few seconds (the web's, so a webhook falls back fast when Redis is gone) each wait ends in a timeout that
    RQ takes for a lost Redis: it logs "could not connect", sleeps 1, 2, 4... up to 60 s, and a job queued in
    the meantime waits that long.
    """
    config = services.config
    worker = subprocess.Popen([sys.executable, "-m", "directo.cli", "worker"], env=worker_env(config),
                              stderr=subprocess.PIPE, text=True)
    try:
        wait_until_listening(worker, config.redis_url)
        time.sleep(9.5)  # several of the web connection's read timeouts: RQ would be backing off by now
        job = services.queue.enqueue("time.time")
        queued = time.monotonic()
        while job.get_status(refresh=True) != JobStatus.FINISHED:
            assert time.monotonic() - queued < 30, f"the job never ran ({job.get_status()})"
            time.sleep(0.05)
        waited = time.monotonic() - queued
    finally:
        worker.terminate()
        _, log = worker.communicate(timeout=30)
    assert "could not connect to Redis" not in log, log
    assert waited < 2.0, f"the job waited {waited:.1f} s for an idle worker"
