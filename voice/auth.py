"""Who is logged in to the pages, and CSRF protection for them (Twilio's signed webhooks are exempt)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import abort, session
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select

from directo.core.db import Database
from directo.core.models import Agent

csrf = CSRFProtect()

IDENTITY_KEY = "agent_identity"
ROLE_KEY = "agent_role"


def log_in(identity: str, role: str) -> None:
    session.clear()  # a fresh session at every login: no fixation
    session[IDENTITY_KEY] = identity
    session[ROLE_KEY] = role
    session.permanent = True


def log_out() -> None:
    session.clear()


def current_identity() -> str | None:
    return session.get(IDENTITY_KEY)


def is_supervisor() -> bool:
    return session.get(ROLE_KEY) == "supervisor"


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if current_identity() is None:
            abort(401, "log in first")
        return view(*args, **kwargs)

    return checked


def supervisor_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if current_identity() is None:
            abort(401, "log in first")
        if not is_supervisor():
            abort(403, "supervisors only")
        return view(*args, **kwargs)

    return checked


def active_person(db: Database, *, supervisor: bool) -> str:
    """Who is asking, checked against the record like every page does, but only reading (so a thousand pages
    reconnecting never queue for SQLite's write lock, which the webhooks need)."""
    identity = current_identity()
    if identity is None:
        abort(401, "log in first")
    if supervisor and not is_supervisor():
        abort(403, "supervisors only")
    with db.reading() as connection:
        row = connection.execute(select(Agent.active, Agent.role).where(Agent.identity == identity)).first()
    if row is None or not row.active or (supervisor and row.role != "supervisor"):
        abort(401, "log in again")
    return identity
