"""Every periodic job in one table: what runs, how often, and under which lock, so one run per interval happens
across all workers. Jobs are named by dotted path: the core schedules the domain's work without importing it."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from redis import RedisError

from directo.core.services import Services

logger = logging.getLogger(__name__)
RECONCILE_SECONDS = 60
PRUNE_SECONDS = 3600


@dataclass(frozen=True)
class Periodic:
    name: str  # also the lock: directo:<name>-lock, held for one interval by the worker that enqueued it
    job: str
    every: float
    why: str


def table(svc: Services) -> tuple[Periodic, ...]:
    sweep = max(1, svc.config.sweep_seconds)
    return (
        Periodic("sweep", "routing.callback_jobs.sweep", sweep,
                 "presence Redis lost, wrap-ups ended, callbacks due, callbacks a dead worker left"),
        Periodic("complaints", "recordings.jobs.resume_pending_job", sweep, "complaint SMS and recordings lost"),
        Periodic("reconcile", "routing.reconcile.reconcile_agents", RECONCILE_SECONDS,
                 "agents held by calls that are over"),
        Periodic("complaint-deadlines", "routing.complaint_calls.deadlines_job", RECONCILE_SECONDS,
                 "complaints due with the customer still not told: the resolution by SMS"),
        Periodic("prune", "directo.core.unit_of_work.prune_old_receipts", PRUNE_SECONDS,
                 "exactly-once receipts past their use"),
    )


def start(svc: Services) -> threading.Thread:
    """Enqueue each periodic job at its interval, from whichever worker takes that job's lock first."""
    periodic = table(svc)
    tick = min(p.every for p in periodic) / 2

    def loop() -> None:
        while True:
            try:
                for job in periodic:
                    if svc.redis.set(f"directo:{job.name}-lock", "1", nx=True, ex=max(1, int(job.every))):
                        svc.queue.enqueue(job.job, job_timeout=max(60, min(int(job.every), 600)),
                                          result_ttl=int(job.every))
            except RedisError:
                logger.warning("periodic jobs not scheduled: Redis unreachable; retrying")
            threading.Event().wait(tick)

    thread = threading.Thread(target=loop, name="directo-periodic", daemon=True)
    thread.start()
    return thread
