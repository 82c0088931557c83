"""RQ jobs that keep callback promises: place the agent-first call, dispatch, and the periodic sweep.

Every job reloads its state from the database and moves a callback only by compare-and-set, so a job run
twice, or a worker killed in the middle of one, never dials twice and never loses a callback.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from rq import Retry
from sqlalchemy import select, update

from directo.core.jobs import current_services
from directo.core.models import Agent, Call, Callback, utcnow
from directo.core.services import Services
from directo.core.twilio_client import twilio_client
from routing.agents import ensure_presence
from routing.callbacks import attempt_call, dispatch, requeue, reservation_key
from routing.presence import presence

logger = logging.getLogger(__name__)

# A callback still 'reserved' or 'dialing' this long after its last step lost its job (e.g. a killed worker).
STALLED = timedelta(seconds=60)
AGENT_LEG_EVENTS = ["initiated", "ringing", "answered", "completed"]
PLACE_RETRY = Retry(max=3, interval=[2, 10, 30])


def _target(agent: Agent) -> str:
    return agent.phone or f"client:{agent.identity}"


def _customer_served_since(svc: Services, callback: Callback) -> bool:
    with svc.db.session() as session:
        return session.scalar(
            select(Call.id)
            .where(Call.caller == callback.phone, Call.direction == "inbound", Call.answered_at >= callback.queued_at)
            .limit(1)
        ) is not None


def place_callback(callback_id: int) -> str | None:
    """Ring the reserved agent first; the agent's answer fetches the whisper and then dials the customer."""
    svc = current_services()
    config = svc.config
    now = utcnow()
    with svc.db.session() as session:
        callback = session.get(Callback, callback_id)
        if callback is None or callback.state != "reserved":
            return None  # already placed, closed or requeued: running twice is harmless
        agent = session.get(Agent, callback.agent_id)
    if _customer_served_since(svc, callback):
        _close_served(svc, callback_id, agent.identity)
        return None
    with svc.db.session() as session:
        won = session.execute(
            update(Callback).where(Callback.id == callback_id, Callback.state == "reserved").values(
                state="dialing", due_at=now)
        ).rowcount
    if not won:
        return None
    if not config.twilio_caller_id:
        _give_back(svc, callback_id, agent.identity, "TWILIO_CALLER_ID is not set")
        raise RuntimeError("TWILIO_CALLER_ID is not set: callbacks cannot be placed")
    try:
        call = twilio_client(config).calls.create(
            to=_target(agent),
            from_=config.twilio_caller_id,
            url=svc.urls("callbacks.agent_answered", callback=callback_id),
            status_callback=svc.urls("callbacks.agent_status", callback=callback_id),
            status_callback_event=AGENT_LEG_EVENTS,
            timeout=config.ring_timeout_seconds,
        )
    except Exception as error:
        logger.exception("callback %s: could not place the call to %s", callback_id, agent.identity)
        with svc.db.session() as session:
            session.execute(update(Callback).where(Callback.id == callback_id, Callback.state == "dialing").values(
                state="reserved", last_error=f"placing the call failed: {error}"))
        raise
    _adopt(svc, callback_id, call.sid, agent.id, now)
    logger.info("callback %s: ringing %s (%s)", callback_id, agent.identity, call.sid)
    return call.sid


def _adopt(svc: Services, callback_id: int, call_sid: str, agent_id: int, now: datetime) -> None:
    """Record the outbound call: the callback knows its call, and the call log shows the attempt."""
    with svc.db.session() as session:
        callback = session.get(Callback, callback_id)
        if callback.current_call_sid == call_sid:  # the agent's answer recorded it already
            return
        callback.current_call_sid = call_sid
        session.add(attempt_call(callback, call_sid, agent_id, now))


def _give_back(svc: Services, callback_id: int, identity: str, error: str) -> None:
    """The callback goes back to the queue at its place; the agent is free again with their idle time kept."""
    with svc.db.session() as session:
        callback = session.get(Callback, callback_id)
        if callback is not None and callback.state in ("reserved", "dialing"):
            requeue(callback, due_at=utcnow(), error=error)
    presence(svc).transition(identity, "available", expect_call=reservation_key(callback_id))


def _close_served(svc: Services, callback_id: int, identity: str) -> None:
    with svc.db.session() as session:
        session.execute(update(Callback).where(Callback.id == callback_id, Callback.state.in_(("reserved", "queued")))
                        .values(state="done", closed_at=utcnow(),
                                close_reason="the customer reached a person by calling in"))
    presence(svc).transition(identity, "available", expect_call=reservation_key(callback_id))
    dispatch(svc, only=identity)


def dispatch_callbacks() -> list[int]:
    """Dispatch as a job: at the end of a wrap-up, and from the sweep."""
    return dispatch(current_services())


def sweep() -> dict[str, int]:
    """The periodic safety net: presence Redis lost, wrap-ups ended, callbacks due, and work a dead worker left."""
    svc = current_services()
    ensure_presence(svc)  # before dispatching: agents Redis forgot would look as if nobody were at work
    now = utcnow()
    recovered = _recover_stalled(svc, now)
    handed = dispatch(svc, now=now)
    return {"recovered": recovered, "dispatched": len(handed)}


def _recover_stalled(svc: Services, now: datetime) -> int:
    with svc.db.session() as session:
        stalled = session.execute(
            select(Callback.id, Callback.state, Callback.due_at, Agent.identity, Agent.phone)
            .join(Agent, Agent.id == Callback.agent_id)
            .where(Callback.state.in_(("reserved", "dialing")), Callback.current_call_sid.is_(None),
                   Callback.due_at < now - STALLED)
        ).all()
    for callback_id, state, since, identity, phone in stalled:
        if state == "reserved":
            logger.warning("callback %s: its job was lost; placing it again", callback_id)
            svc.queue.enqueue(place_callback, callback_id, retry=PLACE_RETRY)
            continue
        # 'dialing' with no call on record: the worker died around the REST request. Ask Twilio what happened.
        recent = twilio_client(svc.config).calls.list(to=phone or f"client:{identity}", limit=20)
        placed = [c for c in recent if c.date_created and c.date_created >= since - timedelta(seconds=5)]
        if placed:
            logger.warning("callback %s: adopting call %s placed by a worker that died", callback_id, placed[0].sid)
            with svc.db.session() as session:
                agent_id = session.get(Callback, callback_id).agent_id
            _adopt(svc, callback_id, placed[0].sid, agent_id, now)
        else:
            logger.warning("callback %s: the call was never placed; back to the queue", callback_id)
            _give_back(svc, callback_id, identity, "the worker stopped while placing the call")
    return len(stalled)

