"""What we remember of a customer, as every agent reads it: their profile, their last contacts with what was noted
and recorded on each, what we still owe them (promises, callbacks) and their open complaints.

One set of queries for the screen pop, the customer page and `directo customers show`, read-only and indexed
(calls by customer and time, callbacks by phone), so a screen pop costs a handful of statements however long
the customer's history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, aliased

from directo.core.models import (
    Agent,
    Call,
    Callback,
    Complaint,
    Customer,
    CustomerChange,
    Recording,
    name_key,
)
from directo.core.states import OPEN, CallbackKind, CallOutcome, Direction

# The screen pop shows this many contacts; the customer page pages through all of them.
RECENT_CONTACTS = 5
# An agent-first call the agent never answered is not a contact with the customer.
_NOT_A_CONTACT = (CallOutcome.AGENT_NO_ANSWER,)
SEARCH_LIMIT = 25


def profile(session: Session, customer: Customer) -> dict[str, Any]:
    """Who they are, as they asked to be called, and the last change to that (who and when)."""
    last = session.execute(
        select(CustomerChange.by, CustomerChange.at).where(CustomerChange.customer_id == customer.id)
        .order_by(CustomerChange.id.desc()).limit(1)
    ).first()
    return {
        "id": customer.id,
        "number": None if customer.forgotten_at else customer.phone,
        "name": customer.name,
        "say_as": customer.say_as,
        "language": customer.language,
        "notes": customer.notes,
        "revision": customer.revision,
        "forgotten_at": customer.forgotten_at,
        "changed": {"by": last.by, "at": last.at} if last else None,
    }


def _kind(call: Call, complaint: str | None) -> str:
    if complaint:
        return "complaint"
    return "callback" if call.direction == Direction.CALLBACK else "call"


def contacts(session: Session, customer_id: int, *, limit: int = RECENT_CONTACTS, exclude_call: int | None = None,
             before: int | None = None) -> list[dict[str, Any]]:
    """Their calls with us, newest first: who took each, how it ended, its notes, the reason they recorded for a
    callback, the complaint flagged on it and the promises made on it. `before`: older than that call (paging)."""
    where = [Call.customer_id == customer_id, Call.outcome.not_in(_NOT_A_CONTACT)]
    if exclude_call is not None:
        where.append(Call.id != exclude_call)
    if before is not None:
        where.append(Call.id < before)
    rows = session.execute(
        select(Call, Agent.identity, Agent.name, Complaint.reference)
        .outerjoin(Agent, Agent.id == Call.agent_id)
        .outerjoin(Complaint, Complaint.call_id == Call.id)
        .where(*where)
        .order_by(Call.started_at.desc(), Call.id.desc())
        .limit(limit)
    ).all()
    calls = [row[0] for row in rows]
    owed = _callbacks(session, [c.callback_id for c in calls if c.callback_id], [c.id for c in calls])
    reasons = _recordings(session, [cb.reason_recording_id for cb in owed.values() if cb.reason_recording_id])
    found = []
    for call, identity, agent_name, reference in rows:
        callback = owed.get(call.callback_id) if call.callback_id else None
        recording = reasons.get(callback.reason_recording_id) if callback and callback.reason_recording_id else None
        found.append({
            "call_id": call.id,
            "call_sid": call.call_sid,
            "started_at": call.started_at,
            "kind": _kind(call, reference),
            "direction": call.direction,
            "outcome": call.outcome,
            "previous_agent": call.routed_to_previous,
            "agent": agent_name,
            "agent_identity": identity,
            "notes": call.notes or "",
            "complaint": reference,
            "callback_kind": callback.kind if callback else None,
            "about": callback.about if callback else None,
            "reason": {"recording_id": recording.id, "state": recording.state} if recording else None,
            "promises": [_promise(cb) for cb in owed.values() if cb.origin_call_id == call.id
                         and cb.kind == CallbackKind.PROMISE],
        })
    return found


def _callbacks(session: Session, ids: list[int], origin_calls: list[int]) -> dict[int, Callback]:
    if not ids and not origin_calls:
        return {}
    found = session.scalars(select(Callback).where(or_(Callback.id.in_(ids),
                                                       Callback.origin_call_id.in_(origin_calls))))
    return {callback.id: callback for callback in found}


def _recordings(session: Session, ids: list[int]) -> dict[int, Recording]:
    if not ids:
        return {}
    return {r.id: r for r in session.scalars(select(Recording).where(Recording.id.in_(ids)))}


def _promise(callback: Callback) -> dict[str, Any]:
    return {"id": callback.id, "due_at": callback.due_at, "about": callback.about, "state": callback.state}


def owed(session: Session, customer_id: int) -> list[dict[str, Any]]:
    """What we still owe them, soonest first: promises with their date and owner, callbacks, complaint calls."""
    owner = aliased(Agent)
    rows = session.execute(
        select(Callback, owner.identity, owner.name, Complaint.reference, Call.call_sid)
        .outerjoin(owner, owner.id == Callback.preferred_agent_id)
        .outerjoin(Complaint, Complaint.id == Callback.complaint_id)
        .outerjoin(Call, Call.id == Callback.origin_call_id)
        .where(Callback.customer_id == customer_id, Callback.state.in_(OPEN))
        .order_by(Callback.due_at, Callback.id)
    ).all()
    return [{
        "id": callback.id,
        "kind": callback.kind,
        "state": callback.state,
        "due_at": callback.due_at,
        "promised_by": callback.promised_by,
        "about": callback.about,
        "owner": {"identity": identity, "name": name} if identity else None,
        "created_by": callback.created_by,
        "complaint": reference,
        "origin_call_sid": call_sid,
    } for callback, identity, name, reference, call_sid in rows]


def open_complaints(session: Session, customer_id: int) -> list[dict[str, Any]]:
    return [
        {"reference": c.reference, "summary": c.summary, "flagged_at": c.flagged_at}
        for c in session.scalars(select(Complaint).where(Complaint.customer_id == customer_id,
                                                         Complaint.resolved_at.is_(None))
                                 .order_by(Complaint.id.desc()))
    ]


def changes(session: Session, customer_id: int) -> list[dict[str, Any]]:
    """Every change to the profile, newest first, with who made it and when."""
    return [{"at": c.at, "by": c.by, "field": c.field, "old": c.old, "new": c.new}
            for c in session.scalars(select(CustomerChange).where(CustomerChange.customer_id == customer_id)
                                     .order_by(CustomerChange.id.desc()))]


def remember(session: Session, customer: Customer, *, exclude_call: int | None = None,
             limit: int = RECENT_CONTACTS) -> dict[str, Any]:
    """Everything an agent should know before saying hello."""
    return {
        "profile": profile(session, customer),
        "contacts": contacts(session, customer.id, limit=limit, exclude_call=exclude_call),
        "owed": owed(session, customer.id),
        "open_complaints": open_complaints(session, customer.id),
    }


def by_number(session: Session, number: str) -> Customer | None:
    return session.scalar(select(Customer).where(Customer.phone == number))


def search(session: Session, text: str, number: str | None, limit: int = SEARCH_LIMIT) -> list[Customer]:
    """Customers by their number (`number`: the text read as one, in E.164), by digits within it, or by name,
    whatever its case and accents."""
    text = text.strip()
    if not text:
        return []
    matches = []
    digits = "".join(ch for ch in text if ch.isdigit())
    if number:
        matches.append(Customer.phone == number)
    if len(digits) >= 4 and len(digits) >= len(text.replace(" ", "").replace("+", "")) - 1:
        matches.append(Customer.phone.contains(digits, autoescape=True))
    key = name_key(text)
    if key:
        matches.append(Customer.name_key.contains(key, autoescape=True))
    return list(session.scalars(select(Customer).where(or_(*matches), Customer.forgotten_at.is_(None))
                                .order_by(Customer.name_key, Customer.id).limit(limit)))


def jsonable(value: Any) -> Any:
    """The same facts with times as ISO 8601, for JSON (the page's script, `--json`)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value
