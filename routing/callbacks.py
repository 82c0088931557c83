"""The callback queue: promises kept in the database, agents reserved in Redis, one agent per callback.

The database is the system of record for every promise; Redis only holds who is free right now. A callback
is handed to an agent by two compare-and-set steps (the agent in Redis, then the row in the database), so
concurrent dispatchers (web processes, workers, the sweep) can never give one callback to two agents.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session, aliased

from directo.core.config import Config
from directo.core.languages import SUPPORTED_LANGUAGES
from directo.core.models import Agent, Call, Callback, utcnow
from directo.core.services import Services
from routing import events
from routing.callback_policy import FreeAgent, QueuedCallback, assign, promise_minutes
from routing.presence import presence

logger = logging.getLogger(__name__)

OPEN = ("queued", "reserved", "dialing")
# How many of the oldest due callbacks one dispatch looks at: enough for every free agent, bounded for speed.
DISPATCH_WINDOW = 200
# Answered calls whose handling time makes the estimate: recent enough to reflect today's pace.
HANDLING_SAMPLE = 50
# Dispatch rounds while races are lost: a briefly held agent is offered again; the sweep catches the rest.
_ROUNDS = 3


def reservation_key(callback_id: int) -> str:
    """What the agent's presence says they are busy with while a callback is theirs."""
    return f"callback:{callback_id}"


def open_callback(session: Session, phone: str) -> Callback | None:
    return session.scalar(
        select(Callback).where(Callback.phone == phone, Callback.state.in_(OPEN)).order_by(Callback.id).limit(1)
    )


def _recent_handling_seconds(session: Session, wrapup_seconds: int) -> float | None:
    rows = session.execute(
        select(Call.answered_at, Call.ended_at)
        .where(Call.answered_at.is_not(None), Call.ended_at.is_not(None))
        .order_by(Call.id.desc())
        .limit(HANDLING_SAMPLE)
    ).all()
    if not rows:
        return None
    talk = sum((ended - answered).total_seconds() for answered, ended in rows) / len(rows)
    return talk + wrapup_seconds


def queue_callback(
    session: Session,
    config: Config,
    *,
    phone: str,
    language: str,
    customer_id: int | None,
    origin_call_id: int | None,
    preferred_agent_id: int | None,
    now: datetime,
) -> tuple[Callback, int]:
    """Queue a callback in the caller's unit of work; returns it with the minutes promised."""
    ahead = session.scalar(
        select(func.count()).select_from(Callback).where(Callback.state.in_(OPEN), Callback.language == language)
    ) or 0
    on_duty = session.scalar(
        select(func.count())
        .select_from(Agent)
        .where(Agent.active.is_(True), Agent.status == "available", Agent.languages_csv.contains(language))
    ) or 0
    minutes = promise_minutes(
        ahead, on_duty, _recent_handling_seconds(session, config.wrapup_seconds), config.callback_promise_minutes
    )
    callback = Callback(
        phone=phone,
        language=language,
        customer_id=customer_id,
        origin_call_id=origin_call_id,
        preferred_agent_id=preferred_agent_id,
        state="queued",
        queued_at=now,
        due_at=now,
        promised_by=now + timedelta(minutes=minutes),
        attempts=0,
    )
    session.add(callback)
    session.flush()
    return callback, minutes


def close_for_customer(session: Session, phone: str, reason: str, now: datetime) -> int:
    """A customer who reached a person by calling in has been served: their queued callback closes itself."""
    return session.execute(
        update(Callback)
        .where(Callback.phone == phone, Callback.state == "queued")
        .values(state="done", closed_at=now, close_reason=reason)
    ).rowcount


def dispatch(svc: Services, *, only: str | None = None, now: datetime | None = None) -> list[int]:
    """Hand due callbacks to free agents; returns the callback ids handed out (their jobs are enqueued).

    A round that lost a race (another dispatcher took the agent or the callback first) is followed by another,
    so an agent briefly held by a losing dispatcher is not left idle while callbacks wait.
    """
    handed: list[int] = []
    for _ in range(_ROUNDS):
        won, contended = _dispatch_round(svc, only, now or utcnow())
        handed += won
        if not contended:
            break
    return handed



def _dispatch_round(svc: Services, only: str | None, now: datetime) -> tuple[list[int], bool]:
    from routing.callback_jobs import place_callback  # jobs import this module

    stamp = now.timestamp()
    presence(svc).promote_due(stamp)
    free = [a for a in presence(svc).idle_agents(SUPPORTED_LANGUAGES) if only in (None, a.identity)]
    if not free:
        return [], False
    preferred = aliased(Agent)
    with svc.db.session() as session:
        rows = session.execute(
            select(Callback.id, Callback.language, Callback.queued_at, Callback.due_at, preferred.identity)
            .outerjoin(preferred, and_(preferred.id == Callback.preferred_agent_id, preferred.active.is_(True)))
            .where(Callback.state == "queued", Callback.due_at <= now)
            .order_by(Callback.queued_at, Callback.id)
            .limit(DISPATCH_WINDOW)
        ).all()
    queued = [QueuedCallback(r[0], r[1], r[2].timestamp(), r[3].timestamp(), r[4]) for r in rows]
    pairs = assign(
        [FreeAgent(a.identity, a.languages, a.idle_since) for a in free],
        queued,
        stamp,
        svc.config.callback_preferred_minutes * 60,
    )
    handed: list[int] = []
    contended = False
    for callback_id, identity in pairs:
        key = reservation_key(callback_id)
        agent = presence(svc).reserve(key, [identity], stamp)
        if agent is None:  # another dispatcher or an inbound call took this agent a moment ago
            contended = True
            continue
        with svc.db.session() as session:
            won = session.execute(
                update(Callback)
                .where(Callback.id == callback_id, Callback.state == "queued")
                .values(state="reserved", agent_id=agent.agent_id, due_at=now)
            ).rowcount
        if not won:  # another dispatcher reserved this callback first: give the agent back, idle time kept
            presence(svc).transition(identity, "available", expect_call=key)
            contended = True
            continue
        svc.queue.enqueue(place_callback, callback_id, job_id=f"place-callback-{callback_id}-{int(stamp * 1000)}")
        events.publish(svc.redis, identity, "callback-reserved", {"callback_id": callback_id})
        logger.info("callback %s reserved for %s", callback_id, identity)
        handed.append(callback_id)
    return handed, contended


def attempt_call(callback: Callback, call_sid: str, agent_id: int, now: datetime) -> Call:
    """The call log's row for one agent-first attempt at a callback."""
    return Call(
        call_sid=call_sid, direction="callback", from_raw=callback.phone, caller=callback.phone,
        customer_id=callback.customer_id, language=callback.language, agent_id=agent_id,
        previous_agent_id=callback.preferred_agent_id, dial_attempts=callback.attempts, started_at=now,
        outcome="ringing", callback_id=callback.id,
    )


def requeue(callback: Callback, *, due_at: datetime, error: str | None) -> None:
    """Back to the queue at its original place (queued_at is kept), to be due again at `due_at`."""
    callback.state = "queued"
    callback.agent_id = None
    callback.current_call_sid = None
    callback.due_at = due_at
    if error:
        callback.last_error = error
