"""The periodic sweep, started by every worker: a Redis lock makes one sweep per interval for all of them."""

from __future__ import annotations

import logging
import threading

from redis import RedisError

from directo.services import Services

logger = logging.getLogger(__name__)
LOCK = "directo:sweep-lock"


def start(svc: Services) -> threading.Thread:
    """Enqueue `routing.callback_jobs.sweep` every SWEEP_SECONDS, from whichever worker gets the lock first."""
    from routing.callback_jobs import sweep

    interval = max(1, svc.config.sweep_seconds)

    def loop() -> None:
        while True:
            try:
                if svc.redis.set(LOCK, "1", nx=True, ex=interval):
                    svc.queue.enqueue(sweep, job_timeout=max(60, interval), result_ttl=interval)
            except RedisError:
                logger.warning("sweep not scheduled: Redis unreachable; retrying")
            threading.Event().wait(interval / 2)

    thread = threading.Thread(target=loop, name="directo-sweeper", daemon=True)
    thread.start()
    return thread
