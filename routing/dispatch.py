"""Handing due callbacks to free agents: the pure assignment (`callback_policy.assign`) with the I/O around it.

A callback is handed over by two compare-and-set steps (the agent in Redis, then the row in the database), so
concurrent dispatchers (web processes, workers, the sweep) can never give one callback to two agents.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import and_, select
from sqlalchemy.orm import aliased

from directo.core.languages import SUPPORTED_LANGUAGES
from directo.core.models import Agent, Callback, utcnow
from directo.core.services import Services
from directo.core.states import CallbackState
from routing import callbacks, events
from routing.callback_policy import FreeAgent, QueuedCallback, assign
from routing.presence import presence

logger = logging.getLogger(__name__)

# How many of the oldest due callbacks one dispatch looks at: enough for every free agent, bounded for speed.
DISPATCH_WINDOW = 200
# Dispatch rounds while races are lost: a briefly held agent is offered again; the sweep catches the rest.
_ROUNDS = 3
# The job that rings the reserved agent, by dotted path: the jobs module builds on this one.
PLACE_JOB = "routing.callback_jobs.place_callback"


def dispatch(svc: Services, *, only: str | None = None, now: datetime | None = None) -> list[int]:
    """Hand due callbacks to free agents; returns the callback ids handed out (their jobs are enqueued).

    A round that lost a race (another dispatcher took the agent or the callback first) is followed by another,
    so an agent briefly held by a losing dispatcher is not left idle while callbacks wait.
    """
    handed: list[int] = []
    for _ in range(_ROUNDS):
        won, contended = _round(svc, only, now or utcnow())
        handed += won
        if not contended:
            break
    return handed


def _round(svc: Services, only: str | None, now: datetime) -> tuple[list[int], bool]:
    stamp = now.timestamp()
    live = presence(svc)
    live.promote_due(stamp)
    free = [a for a in live.idle_agents(SUPPORTED_LANGUAGES) if only in (None, a.identity)]
    if not free:
        return [], False
    preferred = aliased(Agent)
    with svc.db.session() as session:
        rows = session.execute(
            select(Callback.id, Callback.language, Callback.queued_at, Callback.due_at, preferred.identity,
                   Callback.exclusive_until)
            .outerjoin(preferred, and_(preferred.id == Callback.preferred_agent_id, preferred.active.is_(True)))
            .where(Callback.state == CallbackState.QUEUED, Callback.due_at <= now)
            .order_by(Callback.queued_at, Callback.id)
            .limit(DISPATCH_WINDOW)
        ).all()
    queued = [QueuedCallback(r[0], r[1], r[2].timestamp(), r[3].timestamp(), r[4], r[5].timestamp()) for r in rows]
    pairs = assign([FreeAgent(a.identity, a.languages, a.idle_since) for a in free], queued, stamp)
    handed: list[int] = []
    contended = False
    for callback_id, identity in pairs:
        key = callbacks.reservation_key(callback_id)
        agent = live.reserve(key, [identity], stamp)
        if agent is None:  # another dispatcher or an inbound call took this agent a moment ago
            contended = True
            continue
        with svc.db.session() as session:
            won = callbacks.reserve(session, callback_id, agent.agent_id, now)
        if not won:  # another dispatcher reserved this callback first: the agent goes back, idle time kept
            live.release(identity, key)
            contended = True
            continue
        svc.queue.enqueue(PLACE_JOB, callback_id, job_id=f"place-callback-{callback_id}-{int(stamp * 1000)}")
        events.publish(svc.redis, identity, "callback-reserved", {"callback_id": callback_id})
        logger.info("callback %s reserved for %s", callback_id, identity)
        handed.append(callback_id)
    return handed, contended
