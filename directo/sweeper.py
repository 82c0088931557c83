"""The periodic jobs, started by every worker: a Redis lock per job makes one run per interval for all of them."""

from __future__ import annotations

import logging
import threading

from redis import RedisError

from directo.services import Services

logger = logging.getLogger(__name__)
RECONCILE_SECONDS = 60
PRUNE_SECONDS = 3600


def start(svc: Services) -> threading.Thread:
    """Enqueue each periodic job at its interval, from whichever worker takes that job's lock first."""
    from routing.callback_jobs import sweep
    from voice.receipts import prune_old_receipts
    from voice.reconcile import reconcile_agents

    interval = max(1, svc.config.sweep_seconds)
    periodic = (
        ("sweep", interval, sweep),  # callbacks due, wrap-ups ended, lost jobs, presence Redis lost
        ("reconcile", RECONCILE_SECONDS, reconcile_agents),  # agents held by calls that are over
        ("prune", PRUNE_SECONDS, prune_old_receipts),  # exactly-once receipts past their use
    )

    def loop() -> None:
        while True:
            try:
                for name, every, job in periodic:
                    if svc.redis.set(f"directo:{name}-lock", "1", nx=True, ex=every):
                        svc.queue.enqueue(job, job_timeout=max(60, min(every, 600)), result_ttl=every)
            except RedisError:
                logger.warning("periodic jobs not scheduled: Redis unreachable; retrying")
            threading.Event().wait(interval / 2)

    thread = threading.Thread(target=loop, name="directo-sweeper", daemon=True)
    thread.start()
    return thread
