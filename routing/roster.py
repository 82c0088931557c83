"""Who works here: adding agents, their passwords, languages and whether they may still log in.

The record lives in the database and the router's copy of each agent's facts in Redis; both change together.
The CLI and the supervisors' console call these, under the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from directo.core.languages import SUPPORTED_LANGUAGES
from directo.core.models import Agent, utcnow
from directo.core.services import Services
from directo.core.states import INACTIVE, AgentStatus, Role
from routing import agents
from routing.directory import normalise_number
from routing.errors import Conflict, Refused
from routing.presence import presence

IDENTITY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD = 8
MAX_NAME = 200  # the agents.name column
_DUMMY_HASH = generate_password_hash("not-a-password")


@dataclass(frozen=True)
class AgentView:
    identity: str
    name: str
    languages: list[str]
    phone: str | None
    role: str
    active: bool
    has_password: bool
    status: str
    call: str | None
    idle_since: datetime | None


def languages(codes: list[str] | str, default: str | None = None) -> list[str]:
    """Language codes as given on the command line or in a form ("es,en", "es en"), checked against what we serve."""
    if isinstance(codes, str):
        codes = codes.replace(" ", ",").split(",")
    cleaned = [code.strip().lower() for code in codes if code.strip()] or ([default] if default else [])
    if not cleaned:
        raise Refused(f"give at least one language ({', '.join(SUPPORTED_LANGUAGES)})")
    unknown = [code for code in cleaned if code not in SUPPORTED_LANGUAGES]
    if unknown:
        raise Refused(f"language {', '.join(unknown)} not served; use {', '.join(SUPPORTED_LANGUAGES)}")
    return cleaned


def add_agent(
    svc: Services, identity: str, name: str, codes: list[str] | str, phone: str | None = None,
    role: str = Role.AGENT, password: str | None = None,
) -> Agent:
    """A new agent, offline until they say otherwise; with `password`, able to log in at once."""
    if not IDENTITY.match(identity):
        raise Refused(f"identity {identity!r}: use 1-64 letters, digits, '.', '_' or '-'")
    name = name.strip()
    if not 0 < len(name) <= MAX_NAME:
        raise Refused(f"name: give the agent's name, up to {MAX_NAME} characters")
    spoken = languages(codes, svc.config.default_language)
    if role not in tuple(Role):
        raise Refused(f"role must be one of {', '.join(Role)}")
    if password is not None:
        _check_password(password)
    number = None
    if phone:
        number = normalise_number(phone, svc.config.default_region)
        if number is None:
            raise Refused(f"phone {phone!r} is not a valid number")
    with svc.db.session() as session:
        if session.scalar(select(Agent).where(Agent.identity == identity)) is not None:
            raise Refused(f"agent {identity!r} already exists")
        agent = Agent(identity=identity, name=name, phone=number, status=AgentStatus.OFFLINE, role=role,
                      password_hash=generate_password_hash(password) if password is not None else None)
        agent.languages = spoken
        session.add(agent)
        session.flush()
        presence(svc).register(agent)
    return agent


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise Refused(f"password too short: use at least {MIN_PASSWORD} characters")


def set_password(svc: Services, identity: str, password: str) -> None:
    """Store only a salted hash: a leaked database must not hand out agents' passwords."""
    _check_password(password)
    with svc.db.session() as session:
        agent = _agent(session, identity)
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


def set_languages(svc: Services, identity: str, codes: list[str] | str) -> list[str]:
    """Change what an agent is offered; only while they take no calls (the router's idle lists are per language)."""
    spoken = languages(codes)
    if presence(svc).state(identity).get("status") not in (None, AgentStatus.OFFLINE, AgentStatus.AWAY):
        raise Conflict(f"{identity} is taking calls: set them away or offline before changing languages")
    with svc.db.session() as session:
        agent = _agent(session, identity)
        agent.languages = spoken
        presence(svc).register(agent)
    return spoken


def set_active(svc: Services, identity: str, active: bool) -> None:
    """Deactivating takes an agent out of routing first, which is refused while they are on a call."""
    with svc.db.session() as session:
        was_active = _agent(session, identity).active
    if not active and was_active:
        agents.set_status(svc, identity, AgentStatus.OFFLINE)
    with svc.db.session() as session:
        # Through the ORM, so the change ends every session the person has open (models.SESSION_ENDING_CHANGES).
        _agent(session, identity).active = active


def set_role(svc: Services, identity: str, role: str) -> str:
    """A new role takes effect at once: the person's open sessions end, and they log in again as what they are."""
    if role not in tuple(Role):
        raise Refused(f"role must be one of {', '.join(Role)}")
    with svc.db.session() as session:
        _agent(session, identity).role = role
    return role


def list_agents(svc: Services) -> list[AgentView]:
    """Every agent with their live state; a wrap-up that has run out already shows as available."""
    presence(svc).promote_due(utcnow().timestamp())
    with svc.db.session() as session:
        rows = session.scalars(select(Agent).order_by(Agent.identity)).all()
    live = presence(svc).states()
    views = []
    for agent in rows:
        state = live.get(agent.identity, {})
        status = state.get("status", agent.status) if agent.active else INACTIVE
        since = float(state.get("since") or 0)
        views.append(AgentView(
            identity=agent.identity, name=agent.name, languages=agent.languages, phone=agent.phone, role=agent.role,
            active=agent.active, has_password=bool(agent.password_hash), status=status,
            call=state.get("call") or None,
            idle_since=datetime.fromtimestamp(since).astimezone() if status == AgentStatus.AVAILABLE and since
            else None,
        ))
    return views


def _agent(session: Session, identity: str) -> Agent:
    found = session.scalar(select(Agent).where(Agent.identity == identity))
    if found is None:
        raise Refused(f"no agent {identity!r}")
    return found
