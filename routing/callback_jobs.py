"""RQ jobs that keep callback promises: place the agent-first call, dispatch, and the periodic sweep.

Every job reloads its state from the database and moves a callback only through `callbacks`' compare-and-set
transitions, so a job run twice, or a worker killed in the middle of one, never dials twice and never loses one.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from rq import Retry
from sqlalchemy import select

from directo.core.jobs import current_services
from directo.core.models import Agent, Call, Callback, utcnow
from directo.core.services import Services
from directo.core.states import AGENT_LEG_EVENTS, DATED, HELD, CallbackState, Direction
from directo.core.twilio_client import twilio_client
from directo.core.unit_of_work import work
from routing import agents, callbacks
from routing.dispatch import dispatch

logger = logging.getLogger(__name__)

# A callback still held (reserved or dialing) this long after its last step lost its job (e.g. a killed worker).
STALLED = timedelta(seconds=60)
PLACE_RETRY = Retry(max=3, interval=[2, 10, 30])


def _target(agent: Agent) -> str:
    return agent.phone or f"client:{agent.identity}"


def _customer_served_since(svc: Services, callback: Callback) -> bool:
    with svc.db.reading() as connection:
        return connection.execute(
            select(Call.id)
            .where(Call.caller == callback.phone, Call.direction == Direction.INBOUND,
                   Call.answered_at >= callback.queued_at)
            .limit(1)
        ).first() is not None


def place_callback(callback_id: int) -> str | None:
    """Ring the reserved agent first; the agent's answer fetches the whisper and then dials the customer."""
    svc = current_services()
    config = svc.config
    key = callbacks.reservation_key(callback_id)
    with svc.db.session() as session:
        callback = session.get(Callback, callback_id)
        agent = session.get(Agent, callback.agent_id) if callback is not None and callback.agent_id else None
    if callback is None or agent is None:
        return None
    if callback.state != CallbackState.RESERVED:
        # Placed already, requeued, or closed while its agent was held (the customer called in): running twice
        # is harmless, and an agent still held by a callback that is over goes back to work.
        if callback.state not in HELD:
            agents.release(svc, agent.identity, key)
        return None
    # A customer who reached a person meanwhile needs no call-back; what was promised for a date is still owed.
    if callback.kind not in DATED and _customer_served_since(svc, callback):
        with work(svc.db) as unit:
            if callbacks.served(unit.session, callback_id, unit.now):
                agents.free(unit, svc, agent.identity, key)
        return None
    with svc.db.session() as session:
        if not callbacks.dial(session, callback_id, utcnow()):
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
            status_callback_event=list(AGENT_LEG_EVENTS),
            timeout=config.ring_timeout_seconds,
        )
    except Exception as error:
        logger.exception("callback %s: could not place the call to %s", callback_id, agent.identity)
        with svc.db.session() as session:
            callbacks.undial(session, callback_id, f"placing the call failed: {error}")
        raise
    _adopt(svc, callback_id, call.sid, agent.id)
    logger.info("callback %s: ringing %s (%s)", callback_id, agent.identity, call.sid)
    return call.sid


def _adopt(svc: Services, callback_id: int, call_sid: str, agent_id: int) -> None:
    """Record the outbound call: the callback knows its call, and the call log shows the attempt."""
    with svc.db.session() as session:
        callback = session.get(Callback, callback_id)
        if callback is not None:
            callbacks.adopt(session, callback, call_sid, agent_id, utcnow())


def _give_back(svc: Services, callback_id: int, identity: str, error: str) -> None:
    """The callback goes back to the queue at its place; the agent is free again with their idle time kept."""
    with svc.db.session() as session:
        callbacks.requeue(session, callback_id, due_at=utcnow(), error=error)
    agents.release(svc, identity, callbacks.reservation_key(callback_id))


def dispatch_callbacks() -> list[int]:
    """Dispatch as a job: at the end of a wrap-up, and from the sweep."""
    return dispatch(current_services())


def sweep() -> dict[str, int]:
    """The periodic safety net: presence Redis lost, wrap-ups ended, callbacks due, and work a dead worker left."""
    svc = current_services()
    agents.ensure_presence(svc)  # before dispatching: agents Redis forgot would look as if nobody were at work
    now = utcnow()
    recovered = _recover_stalled(svc, now)
    handed = dispatch(svc, now=now)
    return {"recovered": recovered, "dispatched": len(handed)}


def _recover_stalled(svc: Services, now: datetime) -> int:
    with svc.db.session() as session:
        stalled = session.execute(
            select(Callback.id, Callback.state, Callback.due_at, Agent.id, Agent.identity, Agent.phone)
            .join(Agent, Agent.id == Callback.agent_id)
            .where(Callback.state.in_(HELD), Callback.current_call_sid.is_(None), Callback.due_at < now - STALLED)
        ).all()
    for callback_id, state, since, agent_id, identity, phone in stalled:
        if state == CallbackState.RESERVED:
            logger.warning("callback %s: its job was lost; placing it again", callback_id)
            svc.queue.enqueue(place_callback, callback_id, retry=PLACE_RETRY)
            continue
        # Dialing with no call on record: the worker died around the REST request. Ask Twilio what happened.
        recent = twilio_client(svc.config).calls.list(to=phone or f"client:{identity}", limit=20)
        placed = [c for c in recent if c.date_created and c.date_created >= since - timedelta(seconds=5)]
        if placed:
            logger.warning("callback %s: adopting call %s placed by a worker that died", callback_id, placed[0].sid)
            _adopt(svc, callback_id, placed[0].sid, agent_id)
        else:
            logger.warning("callback %s: the call was never placed; back to the queue", callback_id)
            _give_back(svc, callback_id, identity, "the worker stopped while placing the call")
    return len(stalled)
