"""Every periodic job in one table: what runs, how often, and under which lock, so one run per interval happens
across all workers. Jobs are named by dotted path: the core schedules the domain's work without importing it."""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass

from redis import Redis, RedisError

from directo.core.services import Services

logger = logging.getLogger(__name__)
RECONCILE_SECONDS = 60
PRUNE_SECONDS = 3600
# How long a worker waits for the replicas to hold a lock it took before enqueueing the job anyway.
REPLICA_ACK_MS = 500
# Periodic jobs' ids and descriptions begin with this, so the worker's log can tell them from real work.
JOB_PREFIX = "periodic-"


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
        Periodic("rescued", "routing.rescued.record_rescued_job", sweep,
                 "calls put through while the database failed, to put on record"),
        Periodic("reconcile", "routing.reconcile.reconcile_agents", RECONCILE_SECONDS,
                 "agents held by calls that are over"),
        Periodic("complaint-deadlines", "routing.complaint_calls.deadlines_job", RECONCILE_SECONDS,
                 "complaints due with the customer still not told: the resolution by SMS"),
        Periodic("prune", "directo.core.unit_of_work.prune_old_receipts", PRUNE_SECONDS,
                 "exactly-once receipts past their use"),
    )


def on_replicas(redis: Redis, name: str) -> bool:
    """Wait (briefly) until the master's replicas hold the lock just taken, so that a failover right after cannot
    hand the same interval's lock to another worker. Jobs matter more than the rare double run: a replica that
    does not answer in time delays the job by REPLICA_ACK_MS, no more."""
    replicas = int(redis.info("replication").get("connected_slaves", 0))
    if not replicas:
        return True
    acknowledged = int(redis.wait(replicas, REPLICA_ACK_MS))
    if acknowledged < replicas:
        logger.warning("periodic %s: %d of %d replicas hold its lock; enqueued all the same", name, acknowledged,
                       replicas)
    return acknowledged > 0


def start(svc: Services) -> threading.Thread:
    """Enqueue each periodic job at its interval, from whichever worker takes that job's lock first."""
    periodic = table(svc)
    tick = min(p.every for p in periodic) / 2

    def loop() -> None:
        while True:
            try:
                for job in periodic:
                    if svc.redis.set(f"directo:{job.name}-lock", "1", nx=True, ex=max(1, int(job.every))):
                        on_replicas(svc.redis, job.name)
                        svc.queue.enqueue(job.job, job_timeout=max(60, min(int(job.every), 600)),
                                          result_ttl=int(job.every), job_id=f"{JOB_PREFIX}{job.name}-{uuid.uuid4()}",
                                          description=f"{JOB_PREFIX}{job.name}: {job.job}()")
            except RedisError:
                logger.warning("periodic jobs not scheduled: Redis unreachable; retrying")
            threading.Event().wait(tick)

    thread = threading.Thread(target=loop, name="directo-periodic", daemon=True)
    thread.start()
    return thread


class QuietRoutine(logging.Filter):
    """Drops the worker's routine lines about periodic jobs (picked up, OK, result kept: eight lines every sweep);
    their warnings and errors still show, as does every line about any other job."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or not isinstance(record.args, tuple):
            return True
        return not any(isinstance(arg, str) and arg.startswith(JOB_PREFIX) for arg in record.args)
