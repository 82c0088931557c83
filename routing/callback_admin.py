"""What a supervisor may change about a promise (reassign it, cancel it), with the reason kept on its timeline."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from directo.core.models import Agent, Callback
from directo.core.services import Services
from directo.core.states import CallbackState
from directo.core.unit_of_work import work
from routing import callbacks
from routing.dispatch import dispatch
from routing.errors import Conflict, Refused

MAX_REASON = 150


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise Refused("give a reason: it is kept with the change")
    if len(reason) > MAX_REASON:
        raise Refused(f"keep the reason under {MAX_REASON} characters")
    return reason


def _queued(session: Session, callback_id: int, changed: bool) -> Callback:
    """The callback a change was asked for; a change that lost to a dispatcher is refused, saying why."""
    callback = session.get(Callback, callback_id)
    if callback is None:
        raise Refused(f"no callback {callback_id}")
    if not changed:
        raise Conflict(f"callback {callback_id} is {callback.state}: only {CallbackState.QUEUED} callbacks can be "
                       "changed")
    return callback


def reassign(svc: Services, callback_id: int, identity: str, reason: str, by: str) -> str:
    reason = _reason(reason)
    with work(svc.db) as unit:
        agent = unit.session.scalar(select(Agent).where(Agent.identity == identity, Agent.active.is_(True)))
        if agent is None:
            raise Refused(f"no active agent {identity!r}")
        callback = _queued(unit.session, callback_id, callbacks.reassign(unit.session, callback_id, agent.id,
                                                                         unit.now))
        callbacks.note(unit.session, callback, "callback-reassigned", {"to": identity, "by": by, "reason": reason},
                       unit.now)
        unit.after_commit.append(lambda: dispatch(svc))
    return f"callback {callback_id} reassigned to {identity}"


def cancel(svc: Services, callback_id: int, reason: str, by: str) -> str:
    reason = _reason(reason)
    with work(svc.db) as unit:
        callback = _queued(unit.session, callback_id, callbacks.cancel(unit.session, callback_id, by, reason,
                                                                       unit.now))
        callbacks.note(unit.session, callback, "callback-cancelled", {"by": by, "reason": reason}, unit.now)
    return f"callback {callback_id} cancelled"
