"""Helpers for the complaint jobs: one queued job per piece of work, and what a failing job records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rq import Queue, get_current_job
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus


def last_attempt() -> bool:
    """True when RQ has no retry left for the running job (or when called outside a job)."""
    job = get_current_job()
    return job is None or not job.retries_left


def describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


def status(queue: Queue, job_id: str) -> JobStatus | None:
    """The job's status, None when RQ no longer knows it."""
    try:
        return Job.fetch(job_id, connection=queue.connection).get_status()
    except NoSuchJobError:
        return None


def enqueue_once(
    queue: Queue, job_id: str, func: Callable[..., Any], *args: Any, delay: int = 0, **options: Any
) -> bool:
    """Queue a job unless the same job is already waiting, running or scheduled: sweeps can call this freely."""
    if status(queue, job_id) in (*WAITING, JobStatus.STARTED):
        return False
    if delay:
        queue.enqueue_in(timedelta(seconds=delay), func, *args, job_id=job_id, **options)
    else:
        queue.enqueue(func, *args, job_id=job_id, **options)
    return True
