"""The periodic sweep, started by every worker: Redis locks make one sweep per interval, and one pruning of old
webhook receipts per hour, for all of them."""

from __future__ import annotations

import logging
import threading

from redis import RedisError

from directo.services import Services

logger = logging.getLogger(__name__)
LOCK = "directo:sweep-lock"
PRUNE_LOCK = "directo:prune-lock"
PRUNE_SECONDS = 3600


def start(svc: Services) -> threading.Thread:
    """Enqueue `routing.callback_jobs.sweep` every SWEEP_SECONDS, from whichever worker gets the lock first."""
    from routing.callback_jobs import sweep
    from voice.receipts import prune_old_receipts

    interval = max(1, svc.config.sweep_seconds)

    def loop() -> None:
        while True:
            try:
                if svc.redis.set(LOCK, "1", nx=True, ex=interval):
                    svc.queue.enqueue(sweep, job_timeout=max(60, interval), result_ttl=interval)
                if svc.redis.set(PRUNE_LOCK, "1", nx=True, ex=PRUNE_SECONDS):
                    svc.queue.enqueue(prune_old_receipts, job_timeout=600, result_ttl=PRUNE_SECONDS)
            except RedisError:
                logger.warning("sweep not scheduled: Redis unreachable; retrying")
            threading.Event().wait(interval / 2)

    thread = threading.Thread(target=loop, name="directo-sweeper", daemon=True)
    thread.start()
    return thread
