"""The callback queue as people read it: each promise with its deadline, and the ones about to be broken."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import case, select
from sqlalchemy.orm import aliased

from directo.core.models import Agent, Callback, Customer, utcnow
from directo.core.services import Services
from directo.core.states import OPEN, CallbackState

# An open promise this close to its deadline needs a supervisor's eye.
AT_RISK = timedelta(minutes=3)


def flag(state: str, promised_by: Any, now: Any) -> str | None:
    if state not in OPEN:
        return "MISSED" if state == CallbackState.MISSED else None
    if now > promised_by:
        return "LATE"
    if now > promised_by - AT_RISK:
        return "AT RISK"
    return None


def callback_report(svc: Services, *, everything: bool = False) -> list[dict[str, Any]]:
    agent = aliased(Agent)
    now = utcnow()
    query = (
        select(Callback, Customer.name, agent.identity)
        .outerjoin(Customer, Customer.id == Callback.customer_id)
        .outerjoin(agent, agent.id == Callback.agent_id)
        .order_by(case((Callback.state.in_(OPEN), 0), else_=1), Callback.queued_at, Callback.id)
    )
    if not everything:
        query = query.where(Callback.state.in_((*OPEN, CallbackState.MISSED)))
    with svc.db.session() as session:
        rows = session.execute(query).all()
    return [
        {
            "id": cb.id,
            "customer": name or cb.phone,
            "phone": cb.phone,
            "language": cb.language,
            "reason_recording": cb.reason_recording_url,
            "reason_recording_id": cb.reason_recording_id,
            "queued_at": cb.queued_at.isoformat(),
            "promised_by": cb.promised_by.isoformat(),
            "due_at": cb.due_at.isoformat(),
            "attempts": cb.attempts,
            "state": cb.state,
            "agent": identity,
            "flag": flag(cb.state, cb.promised_by, now),
            "last_error": cb.last_error,
            "closed_at": cb.closed_at.isoformat() if cb.closed_at else None,
            "close_reason": cb.close_reason,
        }
        for cb, name, identity in rows
    ]
