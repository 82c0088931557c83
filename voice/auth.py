"""Who is logged in to the pages, checked against the database on every request, and CSRF protection for them
(Twilio's signed webhooks are exempt).

The session cookie names the person and the version of their sessions it was opened under. Every request reads
the person's record: one deactivated, removed, given another role or another password, or logged out anywhere,
has a higher version (or none), so every copy of every cookie they had stops working at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, abort, current_app, g, has_request_context, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from directo.core.models import Agent
from directo.core.states import Role

csrf = CSRFProtect()

IDENTITY_KEY = "agent_identity"
VERSION_KEY = "session_version"
_CURRENT = "directo_agent"


class SessionCookies(SecureCookieSessionInterface):
    """A cookie sent over HTTPS is marked Secure, whether or not PUBLIC_BASE_URL says https: behind a TLS proxy
    (TRUSTED_PROXIES) the request itself knows it came over TLS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return super().get_cookie_secure(app) or (has_request_context() and request.is_secure)


def log_in(agent: Agent) -> None:
    session.clear()  # a fresh session at every login: no fixation
    session[IDENTITY_KEY] = agent.identity
    session[VERSION_KEY] = agent.session_version
    session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME without a request (SESSION_IDLE_HOURS)


def log_out() -> None:
    """Logging out ends every session of this person, copies of the cookie included, not only this browser's."""
    agent = current_agent()
    if agent is not None:
        with current_app.extensions["directo"].db.session() as db:
            db.execute(update(Agent).where(Agent.id == agent.id)
                       .values(session_version=Agent.session_version + 1))
    session.clear()
    g.pop(_CURRENT, None)


def current_agent() -> Agent | None:
    """The logged-in person as the database has them now, read once per request; None when there is nobody, or
    when the cookie's person is gone, inactive or their sessions were ended since (that session is dropped)."""
    if _CURRENT in g:
        return g.get(_CURRENT)
    agent = None
    identity = session.get(IDENTITY_KEY)
    if isinstance(identity, str):
        # A read-only transaction: no write lock taken (SQLite) on every page request.
        with current_app.extensions["directo"].db.reading() as connection, Session(connection) as db:
            agent = db.scalar(select(Agent).where(Agent.identity == identity))
            if agent is not None:
                db.expunge(agent)
        if agent is None or not agent.active or session.get(VERSION_KEY) != agent.session_version:
            agent = None
    if agent is None and identity is not None:
        session.clear()
    g.setdefault(_CURRENT, agent)
    return agent


def current_identity() -> str | None:
    agent = current_agent()
    return agent.identity if agent is not None else None


def is_supervisor() -> bool:
    """From the role the database holds now, never from what the cookie remembers."""
    agent = current_agent()
    return agent is not None and agent.role == Role.SUPERVISOR


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if current_agent() is None:
            abort(401, "log in first")
        return view(*args, **kwargs)

    return checked


def active_person(*, supervisor: bool) -> str:
    """Who opens a live stream, checked as every page checks it (the record read, no write lock taken, so a thousand
    pages reconnecting never queue for SQLite's write lock, which the webhooks need)."""
    named = session.get(IDENTITY_KEY) is not None  # a cookie for someone no longer allowed in: they log in again
    agent = current_agent()
    if agent is None:
        abort(401, "log in again" if named else "log in first")
    if supervisor and agent.role != Role.SUPERVISOR:
        abort(403, "supervisors only")
    return agent.identity
