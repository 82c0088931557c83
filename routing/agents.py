"""Agent management: the record in the database and the live presence in Redis, changed together."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from directo.core.languages import SUPPORTED_LANGUAGES
from directo.core.models import Agent, Call, Callback, utcnow
from directo.core.services import Services
from routing.callbacks import dispatch, reservation_key
from routing.directory import normalise_number
from routing.presence import presence

logger = logging.getLogger(__name__)
IDENTITY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
SETTABLE = ("available", "away", "offline")
ON_A_CALL = ("reserved", "busy")
ROLES = ("agent", "supervisor")
MIN_PASSWORD = 8
MAX_NAME = 200  # the agents.name column
# Twilio ends any call after four hours unless told otherwise (the <Dial> timeLimit default).
LONGEST_CALL = timedelta(hours=4)
_DUMMY_HASH = generate_password_hash("not-a-password")


class AgentError(ValueError):
    """A request about an agent that cannot be honoured; the message says why, for the person who asked."""


@dataclass(frozen=True)
class AgentView:
    identity: str
    name: str
    languages: list[str]
    phone: str | None
    status: str
    call: str | None
    idle_since: datetime | None


def add_agent(
    svc: Services, identity: str, name: str, languages: list[str], phone: str | None = None, role: str = "agent"
) -> Agent:
    if not IDENTITY.match(identity):
        raise AgentError(f"identity {identity!r}: use 1-64 letters, digits, '.', '_' or '-'")
    name = name.strip()
    if not 0 < len(name) <= MAX_NAME:
        raise AgentError(f"name: give the agent's name, up to {MAX_NAME} characters")
    codes = [code.strip().lower() for code in languages if code.strip()] or [svc.config.default_language]
    unknown = [code for code in codes if code not in SUPPORTED_LANGUAGES]
    if unknown:
        raise AgentError(f"language {', '.join(unknown)} not served; use {', '.join(SUPPORTED_LANGUAGES)}")
    if role not in ROLES:
        raise AgentError(f"role must be one of {', '.join(ROLES)}")
    number = None
    if phone:
        number = normalise_number(phone, svc.config.default_region)
        if number is None:
            raise AgentError(f"phone {phone!r} is not a valid number")
    with svc.db.session() as session:
        if session.scalar(select(Agent).where(Agent.identity == identity)) is not None:
            raise AgentError(f"agent {identity!r} already exists")
        agent = Agent(identity=identity, name=name, phone=number, status="offline", role=role)
        agent.languages = codes
        session.add(agent)
        session.flush()
        presence(svc).register(agent)
    return agent


def set_status(svc: Services, identity: str, status: str) -> str:
    """Apply an agent's requested presence; going available ends a wrap-up early, keeping no idle credit."""
    if status not in SETTABLE:
        raise AgentError(f"status must be one of {', '.join(SETTABLE)}")
    with svc.db.session() as session:
        agent = session.scalar(select(Agent).where(Agent.identity == identity))
        if agent is None or not agent.active:
            raise AgentError(f"no active agent {identity!r}")
        if not presence(svc).known(identity):
            presence(svc).register(agent)
        live = presence(svc).state(identity)
        if live.get("status") in ON_A_CALL:
            raise AgentError(f"{identity} is on call {live.get('call')}; change their status when it ends")
        agent.status = status
        # Compare-and-set on the call we just saw: a call reserved for the agent meanwhile is never overwritten.
        if live.get("status") != status and not presence(svc).transition(
            identity, status, expect_call=live.get("call", ""),
            since=utcnow().timestamp() if status == "available" else None,
        ):
            raise AgentError(f"{identity} was just given a call; change their status when it ends")
    if status == "available":  # a newly free agent takes the oldest callback waiting for them, at once
        dispatch(svc, only=identity)
    return status


def set_password(svc: Services, identity: str, password: str) -> None:
    """Store only a salted hash: a leaked database must not hand out agents' passwords."""
    if len(password) < MIN_PASSWORD:
        raise AgentError(f"password too short: use at least {MIN_PASSWORD} characters")
    with svc.db.session() as session:
        agent = session.scalar(select(Agent).where(Agent.identity == identity))
        if agent is None:
            raise AgentError(f"no agent {identity!r}")
        agent.password_hash = generate_password_hash(password)


def check_password(svc: Services, identity: str, password: str) -> Agent | None:
    """The active agent with these credentials, or None: callers must not learn which part was wrong."""
    with svc.db.session() as session:
        agent = session.scalar(select(Agent).where(Agent.identity == identity))
        if agent is None or not agent.active or not agent.password_hash:
            # Hash anyway so a wrong identity takes as long as a wrong password.
            check_password_hash(_DUMMY_HASH, password)
            return None
        if not check_password_hash(agent.password_hash, password):
            return None
        session.expunge(agent)
        return agent


def restore_presence(svc: Services) -> int:
    """After Redis lost its data (a restart without persistence, a failover to a blank replica), put presence back.

    Presence lives only in Redis; without it every caller would be promised a callback while agents sat
    'available' on their pages. The database keeps each agent's chosen status and the calls in progress, so an
    agent talking to someone comes back on that call (its end starts their wrap-up as usual) and the rest as they
    asked to be, available ones idle from now. Agents Redis still knows are left alone, and no transition here
    can overwrite a call reserved meanwhile (each expects the agent to hold none).
    """
    now = utcnow()
    with svc.db.session() as session:
        agents = session.scalars(select(Agent).where(Agent.active.is_(True))).all()
        engaged = _engaged(session, svc.config.ring_timeout_seconds, now)
    restored = 0
    for agent in agents:
        if presence(svc).known(agent.identity):
            continue
        presence(svc).register(agent)
        if agent.id in engaged:
            status, call = engaged[agent.id]
            presence(svc).transition(agent.identity, status, expect_call="", call=call)
        elif agent.status != "offline":
            presence(svc).transition(agent.identity, agent.status, expect_call="", since=now.timestamp())
        restored += 1
    presence(svc).mark_loaded()
    return restored


def ensure_presence(svc: Services) -> bool:
    """Put presence back if Redis lost it since it was last loaded; True when it had to."""
    if presence(svc).loaded():
        return False
    restored = restore_presence(svc)
    if restored:
        logger.warning("Redis had lost the agents' presence: %d agents put back from the database", restored)
    return True


def _engaged(session: Session, ring_seconds: int, now: datetime) -> dict[int, tuple[str, str]]:
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
               or_(and_(Call.outcome == "ringing", Call.started_at >= ringing_since),
                   and_(Call.outcome == "answered", Call.started_at >= now - LONGEST_CALL)))
        .order_by(Call.started_at)
    )
    for agent_id, call_sid, answered_at in calls:
        engaged[agent_id] = ("busy" if answered_at is not None else "reserved", call_sid)
    callbacks = session.execute(
        select(Callback.agent_id, Callback.id, Callback.state)
        .where(Callback.agent_id.is_not(None), Callback.state.in_(("reserved", "dialing")),
               Callback.due_at >= now - LONGEST_CALL)
    )
    for agent_id, callback_id, state in callbacks:
        engaged[agent_id] = ("busy" if state == "dialing" else "reserved", reservation_key(callback_id))
    return engaged


def list_agents(svc: Services) -> list[AgentView]:
    presence(svc).promote_due(utcnow().timestamp())
    with svc.db.session() as session:
        agents = session.scalars(select(Agent).order_by(Agent.identity)).all()
    live = presence(svc).states()
    views = []
    for agent in agents:
        state = live.get(agent.identity, {})
        status = state.get("status", agent.status) if agent.active else "inactive"
        since = float(state.get("since") or 0)
        views.append(
            AgentView(
                identity=agent.identity,
                name=agent.name,
                languages=agent.languages,
                phone=agent.phone,
                status=status,
                call=state.get("call") or None,
                idle_since=datetime.fromtimestamp(since).astimezone() if status == "available" and since else None,
            )
        )
    return views
