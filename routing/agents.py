"""An agent's state and every way it changes: what they ask for, and what a call does to them.

Presence lives in Redis (`presence.py`, atomic Lua scripts); the status an agent asked for is also kept in the
database, so presence can be put back after Redis loses it. Every change here is a compare-and-set on what the
agent holds (a call SID or `callback:<id>`), so a late or repeated event never moves an agent who has moved on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from redis import RedisError
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from directo.core.models import Agent, Call, Callback, utcnow
from directo.core.services import Services
from directo.core.states import HELD, ON_A_CALL, SETTABLE, AgentStatus, CallbackState, CallOutcome
from directo.core.unit_of_work import Work
from routing.callbacks import reservation_key
from routing.dispatch import dispatch
from routing.errors import Conflict, Refused
from routing.presence import presence

logger = logging.getLogger(__name__)
T = TypeVar("T")
# Twilio ends any call after four hours unless told otherwise (the <Dial> timeLimit default).
LONGEST_CALL = timedelta(hours=4)
# The job that offers a callback once a wrap-up has run out, by dotted path (the jobs module builds on this one).
DISPATCH_JOB = "routing.callback_jobs.dispatch_callbacks"


def live(change: Callable[[], T]) -> T | None:
    """A live-state change that must not break the record: on a Redis outage it is logged and skipped."""
    try:
        return change()
    except RedisError:
        logger.exception("live state unreachable; the record is kept without it")
        return None


# --- what an agent asks for -------------------------------------------------------------------------------------

def set_status(svc: Services, identity: str, status: str) -> str:
    """Apply an agent's requested presence; going available ends a wrap-up early, keeping no idle credit."""
    if status not in SETTABLE:
        raise Refused(f"status must be one of {', '.join(SETTABLE)}")
    live_state = presence(svc)
    with svc.db.session() as session:
        agent = session.scalar(select(Agent).where(Agent.identity == identity))
        if agent is None or not agent.active:
            raise Refused(f"no active agent {identity!r}")
        if not live_state.known(identity):
            live_state.register(agent)
        now = live_state.state(identity)
        if now.get("status") in ON_A_CALL:
            raise Conflict(f"{identity} is on call {now.get('call')}; change their status when it ends")
        agent.status = status
        # Compare-and-set on the call we just saw: a call reserved for the agent meanwhile is never overwritten.
        if now.get("status") != status and not live_state.transition(
            identity, status, expect_call=now.get("call", ""),
            since=utcnow().timestamp() if status == AgentStatus.AVAILABLE else None,
        ):
            raise Conflict(f"{identity} was just given a call; change their status when it ends")
    if status == AgentStatus.AVAILABLE:  # a newly free agent takes the oldest callback waiting for them, at once
        dispatch(svc, only=identity)
    return status


# --- what a call does to an agent -------------------------------------------------------------------------------

def on_the_line(svc: Services, identity: str, holding: str) -> bool:
    """The agent answered what they were reserved for: busy until its end."""
    return bool(live(lambda: presence(svc).transition(identity, AgentStatus.BUSY, expect_call=holding,
                                                      call=holding)))


def took_unreserved(svc: Services, identity: str, call_sid: str) -> bool:
    """Whoever answered a call that rang everyone (an outage's fallback) held no reservation for it: busy on it
    from now, so that no other call rings them, unless they already hold another."""
    return bool(live(lambda: presence(svc).transition(identity, AgentStatus.BUSY, expect_call="", call=call_sid)))


def release(svc: Services, identity: str, holding: str) -> bool:
    """What held the agent is over before it began (a replay, a lost race, a call never placed): free again with
    their idle time kept, and nothing offered (whoever released them decides what comes next)."""
    return bool(live(lambda: presence(svc).release(identity, holding)))


def free(work: Work, svc: Services, identity: str, holding: str) -> bool:
    """The agent is free again, idle time kept; once committed, they are offered the oldest callback they may take."""
    return _offered(work, svc, identity, release(svc, identity, holding))


def wrap_up(work: Work, svc: Services, identity: str, holding: str, seconds: int | None = None) -> bool:
    """A call ended: wrap-up time (WRAPUP_SECONDS after a conversation, unless told), then free; when it runs out
    they may take the oldest waiting callback."""
    seconds = svc.config.wrapup_seconds if seconds is None else seconds
    if seconds <= 0:
        return _offered(work, svc, identity, bool(live(lambda: presence(svc).transition(
            identity, AgentStatus.AVAILABLE, expect_call=holding, since=work.now.timestamp()))))
    until = work.now.timestamp() + seconds
    moved = bool(live(lambda: presence(svc).transition(identity, AgentStatus.WRAPUP, expect_call=holding,
                                                       until=until)))
    if moved:  # RQ schedules to the whole second, rounding down: a second more never runs before the end
        work.after_commit.append(lambda: svc.queue.enqueue_in(timedelta(seconds=seconds + 1), DISPATCH_JOB))
    return moved


def _offered(work: Work, svc: Services, identity: str, freed: bool) -> bool:
    if freed:
        work.after_commit.append(lambda: dispatch(svc, only=identity))
    return freed


def missed_ring(svc: Services, agent: Agent, holding: str) -> bool:
    """An agent who lets a call ring out is probably not at their desk: away, not idle, until they say otherwise."""
    moved = bool(live(lambda: presence(svc).transition(agent.identity, AgentStatus.AWAY, expect_call=holding)))
    if moved:
        agent.status = AgentStatus.AWAY
    return moved


# --- presence put back after Redis lost it ----------------------------------------------------------------------

def restore_presence(svc: Services) -> int:
    """After Redis lost its data (a restart without persistence, a failover to a blank replica), put presence back.

    Presence lives only in Redis; without it every caller would be promised a callback while agents sat
    available on their pages. The database keeps each agent's chosen status and the calls in progress, so an
    agent talking to someone comes back on that call (its end starts their wrap-up as usual) and the rest as they
    asked to be, available ones idle from now. Agents Redis still knows are left alone, and no transition here
    can overwrite a call reserved meanwhile (each expects the agent to hold none).
    """
    now = utcnow()
    live_state = presence(svc)
    with svc.db.session() as session:
        agents = session.scalars(select(Agent).where(Agent.active.is_(True))).all()
        engaged = engaged_on_record(session, svc.config.ring_timeout_seconds, now)
    restored = 0
    for agent in agents:
        if live_state.known(agent.identity):
            continue
        live_state.register(agent)
        if agent.id in engaged:
            status, call = engaged[agent.id]
            live_state.transition(agent.identity, status, expect_call="", call=call)
        elif agent.status != AgentStatus.OFFLINE:
            live_state.transition(agent.identity, agent.status, expect_call="", since=now.timestamp())
        restored += 1
    live_state.mark_loaded()
    return restored


def ensure_presence(svc: Services) -> bool:
    """Put presence back if Redis lost it since it was last loaded; True when it had to."""
    if presence(svc).loaded():
        return False
    restored = restore_presence(svc)
    if restored:
        logger.warning("Redis had lost the agents' presence: %d agents put back from the database", restored)
    return True


def engaged_on_record(session: Session, ring_seconds: int, now: datetime) -> dict[int, tuple[str, str]]:
    """Agent id -> (presence status, what they hold) for the calls and callbacks the database says are under way.

    An unanswered ring lasts at most the ring timeout and a Twilio call at most four hours, so older records
    whose end never arrived do not hold an agent forever; both bounds are ranges of the (outcome, started_at)
    index, so a call log of millions is not scanned.
    """
    ringing_since = now - timedelta(seconds=ring_seconds + 60)
    engaged: dict[int, tuple[str, str]] = {}
    calls = session.execute(
        select(Call.agent_id, Call.call_sid, Call.answered_at)
        .where(Call.agent_id.is_not(None), Call.ended_at.is_(None),
               or_(and_(Call.outcome == CallOutcome.RINGING, Call.started_at >= ringing_since),
                   and_(Call.outcome == CallOutcome.ANSWERED, Call.started_at >= now - LONGEST_CALL)))
        .order_by(Call.started_at)
    )
    for agent_id, call_sid, answered_at in calls:
        engaged[agent_id] = (AgentStatus.BUSY if answered_at is not None else AgentStatus.RESERVED, call_sid)
    callbacks = session.execute(
        select(Callback.agent_id, Callback.id, Callback.state)
        .where(Callback.agent_id.is_not(None), Callback.state.in_(HELD), Callback.due_at >= now - LONGEST_CALL)
    )
    for agent_id, callback_id, state in callbacks:
        engaged[agent_id] = (AgentStatus.BUSY if state == CallbackState.DIALING else AgentStatus.RESERVED,
                             reservation_key(callback_id))
    return engaged
