"""What a supervisor can change: callback promises (reassign, cancel, with a reason kept) and the agent roster."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from directo.core.languages import SUPPORTED_LANGUAGES
from directo.core.models import Agent, Callback, CallEvent, utcnow
from directo.core.services import Services
from directo.core.states import Role
from routing import agents as agent_admin
from routing.callbacks import dispatch
from routing.presence import presence

MAX_REASON = 150


class Conflict(RuntimeError):
    """The change no longer applies to the thing as it is now (e.g. the callback is already dialing)."""


class Invalid(ValueError):
    """The request itself is wrong (unknown agent, empty reason, ...)."""


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise Invalid("give a reason: it is kept with the change")
    if len(reason) > MAX_REASON:
        raise Invalid(f"keep the reason under {MAX_REASON} characters")
    return reason


def _change_queued(svc: Services, callback_id: int, values: dict[str, Any], event: str, detail: dict[str, Any]) -> None:
    """Change a callback only while it is still queued: the state check and the write are one UPDATE, so a
    dispatcher that takes it at the same moment wins cleanly and the supervisor is told."""
    with svc.db.session() as session:
        changed = session.execute(
            update(Callback).where(Callback.id == callback_id, Callback.state == "queued").values(**values)
        ).rowcount
        callback = session.get(Callback, callback_id)
        if callback is None:
            raise Invalid(f"no callback {callback_id}")
        if not changed:
            raise Conflict(f"callback {callback_id} is {callback.state}: only queued callbacks can be changed")
        if callback.origin_call_id is not None:
            session.add(CallEvent(call_id=callback.origin_call_id, kind=event,
                                  detail={"callback_id": callback_id, **detail}))


def reassign(svc: Services, callback_id: int, identity: str, reason: str, by: str) -> str:
    reason = _reason(reason)
    with svc.db.session() as session:
        agent = session.scalar(select(Agent).where(Agent.identity == identity, Agent.active.is_(True)))
    if agent is None:
        raise Invalid(f"no active agent {identity!r}")
    _change_queued(svc, callback_id, {"preferred_agent_id": agent.id, "due_at": utcnow()},
                   "callback-reassigned", {"to": identity, "by": by, "reason": reason})
    dispatch(svc)
    return f"callback {callback_id} reassigned to {identity}"


def cancel(svc: Services, callback_id: int, reason: str, by: str) -> str:
    reason = _reason(reason)
    _change_queued(svc, callback_id, {"state": "cancelled", "closed_at": utcnow(),
                                      "close_reason": f"cancelled by {by}: {reason}"},
                   "callback-cancelled", {"by": by, "reason": reason})
    return f"callback {callback_id} cancelled"


def reason_recordings(svc: Services) -> dict[int, int]:
    """Open callbacks whose spoken reason is stored here, so the queue page can play it from our own server."""
    with svc.db.session() as session:
        rows = session.execute(select(Callback.id, Callback.reason_recording_id)
                               .where(Callback.state.in_(("queued", "reserved", "dialing", "missed")),
                                      Callback.reason_recording_id.is_not(None))).all()
    return {callback_id: recording_id for callback_id, recording_id in rows}


def agent_rows(svc: Services) -> list[dict[str, Any]]:
    live = {view.identity: view for view in agent_admin.list_agents(svc)}
    with svc.db.session() as session:
        agents = session.scalars(select(Agent).order_by(Agent.active.desc(), Agent.identity)).all()
    return [{"identity": a.identity, "name": a.name, "languages": ",".join(a.languages), "phone": a.phone,
             "role": a.role, "active": a.active, "status": live[a.identity].status if a.identity in live else "offline",
             "has_password": bool(a.password_hash)} for a in agents]


def _languages(raw: str) -> list[str]:
    codes = [code.strip().lower() for code in raw.replace(" ", ",").split(",") if code.strip()]
    if not codes:
        raise Invalid(f"give at least one language ({', '.join(SUPPORTED_LANGUAGES)})")
    return codes


def add_agent(svc: Services, identity: str, name: str, languages: str, phone: str | None, role: str,
              password: str) -> str:
    if not name:
        raise Invalid("give the agent's name")
    if len(password) < agent_admin.MIN_PASSWORD:
        raise Invalid(f"password too short: use at least {agent_admin.MIN_PASSWORD} characters")
    agent_admin.add_agent(svc, identity, name, _languages(languages), phone, role=role)
    agent_admin.set_password(svc, identity, password)
    return f"{identity} added"


def reset_password(svc: Services, identity: str, password: str) -> str:
    agent_admin.set_password(svc, identity, password)
    return f"password of {identity} reset"


def set_languages(svc: Services, identity: str, raw: str) -> str:
    codes = _languages(raw)
    unknown = [code for code in codes if code not in SUPPORTED_LANGUAGES]
    if unknown:
        raise Invalid(f"language {', '.join(unknown)} not served; use {', '.join(SUPPORTED_LANGUAGES)}")
    # The router's idle lists are per language: change them only while the agent is not taking calls.
    if presence(svc).state(identity).get("status") not in (None, "offline", "away"):
        raise Conflict(f"{identity} is taking calls: set them away or offline before changing languages")
    with svc.db.session() as session:
        agent = _agent(session, identity)
        agent.languages = codes
        presence(svc).register(agent)
    return f"{identity} now speaks {', '.join(codes)}"


def set_active(svc: Services, identity: str, active: bool) -> str:
    with svc.db.session() as session:
        was_active = _agent(session, identity).active
    if not active and was_active:
        try:
            agent_admin.set_status(svc, identity, "offline")  # out of routing first; refused while on a call
        except agent_admin.AgentError as busy:
            raise Conflict(str(busy)) from None
    with svc.db.session() as session:
        # Through the ORM, so the change ends every session the person has open (models.SESSION_ENDING_CHANGES).
        _agent(session, identity).active = active
    return f"{identity} {'reactivated' if active else 'deactivated'}"


def set_role(svc: Services, identity: str, role: str) -> str:
    """A new role takes effect at once: the person's open sessions end, and they log in again as what they are."""
    if role not in set(Role):
        raise Invalid(f"role must be one of {', '.join(Role)}")
    with svc.db.session() as session:
        _agent(session, identity).role = role
    return f"{identity} is now {role}"


def _agent(session: Session, identity: str) -> Agent:
    agent = session.scalar(select(Agent).where(Agent.identity == identity))
    if agent is None:
        raise Invalid(f"no agent {identity!r}")
    return agent
