"""The real `directo worker` process: a job queued after a quiet spell runs at once."""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import wait_until_listening, worker_env
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus

from directo.core.embedded_redis import EmbeddedRedis


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


def test_a_worker_started_while_redis_is_down_comes_up_when_it_returns(config, tmp_path) -> None:
    """A Redis restart or failover meets workers starting (or restarting their scheduler): they must wait, not die
    (under `directo run`, a worker that dies takes the whole server down with it)."""
    private = EmbeddedRedis(tmp_path / "redis")  # not started yet: Redis is down
    worker = subprocess.Popen([sys.executable, "-m", "directo.cli", "worker"],
                              env=worker_env(config, REDIS_URL=private.url), stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)
        assert worker.poll() is None, "the worker gave up while Redis was down"
        private.start()
        wait_until_listening(worker, private.url)
        job = Queue("directo", connection=Redis.from_url(private.url)).enqueue("time.time")
        deadline = time.monotonic() + 30
        while job.get_status(refresh=True) != JobStatus.FINISHED:
            assert time.monotonic() < deadline, f"the job never ran ({job.get_status()})"
            time.sleep(0.05)
    finally:
        worker.terminate()
        worker.communicate(timeout=30)
        private.stop()


def _worker_log(config, *options: str) -> str:
    """What a real worker prints while the periodic jobs run every second and one ordinary job comes in."""
    worker = subprocess.Popen([sys.executable, "-m", "directo.cli", "worker", *options],
                              env=worker_env(config, SWEEP_SECONDS="1"), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    connection = Redis.from_url(config.redis_url)
    try:
        wait_until_listening(worker, config.redis_url)
        queue = Queue("directo", connection=connection)
        deadline = time.monotonic() + 30
        swept: set[str] = set()  # a sweep's result is kept for one interval: watch them go by
        while len(swept) < 3:
            assert time.monotonic() < deadline, "the periodic sweep did not run"
            done = Job.fetch_many(queue.finished_job_registry.get_job_ids(), connection=connection)
            swept |= {job.id for job in done if job is not None and job.func_name == "routing.callback_jobs.sweep"}
            time.sleep(0.1)
        job = queue.enqueue("time.time")
        while job.get_status(refresh=True) != JobStatus.FINISHED:
            assert time.monotonic() < deadline, f"the job never ran ({job.get_status()})"
            time.sleep(0.05)
    finally:
        worker.terminate()
        log, _ = worker.communicate(timeout=30)
    return log


def test_the_worker_is_quiet_about_routine_periodic_jobs_and_verbose_when_asked(services) -> None:
    """Eight lines every sweep buried anything that mattered; the jobs that do real work still show."""
    quiet = _worker_log(services.config)
    assert "time.time()" in quiet, quiet
    for routine in ("sweep", "resume_pending_job", "reconcile_agents", "prune_old_receipts", "periodic-"):
        assert routine not in quiet, quiet
    services.redis.flushdb()
    verbose = _worker_log(services.config, "--verbose")
    assert "periodic-sweep" in verbose and "routing.callback_jobs.sweep()" in verbose and "time.time()" in verbose
