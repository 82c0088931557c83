"""What the agent's screen pop shows about a call or a callback, and who may see it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import url_for
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from directo.core.models import Agent, Call, Callback, CallEvent, Complaint, Customer, Recording
from directo.core.states import Direction, RecordingState
from recordings import register
from routing import memory

RECENT_CALLS = 5


def took(call: Call, agent_id: int) -> bool:
    """This agent answered the call: only they write its notes (an agent it merely rang does not)."""
    return call.agent_id == agent_id and call.answered_at is not None


def reserved_to(session: Session, call: Call, agent_id: int, identity: str) -> bool:
    """The call is (or was, at any attempt) reserved to this agent: they may see who is calling."""
    if call.agent_id == agent_id:
        return True
    tried = session.scalars(select(CallEvent.detail).where(CallEvent.call_id == call.id,
                                                           CallEvent.kind == "agent-reserved"))
    return any(detail.get("agent") == identity for detail in tried)


def callback_for(session: Session, callback: Callback, agent_id: int) -> bool:
    """A callback is the agent's when it was reserved to them or one of its calls reached them."""
    if callback.agent_id == agent_id:
        return True
    return bool(session.scalar(select(exists().where(Call.callback_id == callback.id, Call.agent_id == agent_id))))


def may_hear(session: Session, recording: Recording, agent_id: int) -> bool:
    """An agent hears a recording only of their own calls, callbacks and complaints, and the reasons recorded by a
    customer whose call is (or was) theirs: whoever takes the next call hears what was said before."""
    callbacks = session.scalars(select(Callback).where(Callback.reason_recording_id == recording.id)).all()
    if any(callback_for(session, callback, agent_id) for callback in callbacks):
        return True
    customers = [callback.customer_id for callback in callbacks if callback.customer_id is not None]
    if customers and session.scalar(select(exists().where(Call.customer_id.in_(customers),
                                                          Call.agent_id == agent_id))):
        return True
    own_complaint = exists().where(Complaint.recording_id == recording.id, Complaint.agent_id == agent_id)
    own_call = exists().where(Call.call_sid == recording.call_sid, Call.agent_id == agent_id)
    return bool(session.scalar(select(own_complaint | own_call)))


def call_context(session: Session, call: Call, agent_id: int | None) -> dict[str, Any]:
    """The screen pop for a call: who is calling, their history with us and with this agent, open complaints."""
    complaint = session.scalar(select(Complaint.reference).where(Complaint.call_id == call.id))
    callback = session.get(Callback, call.callback_id) if call.callback_id else None
    return {
        "call_sid": call.call_sid,
        "call_id": call.id,
        "direction": call.direction,
        "outcome": call.outcome,
        "started_at": _iso(call.started_at),
        "notes": call.notes or "",
        "complaint": complaint,
        **_customer(session, call.customer_id, call.caller, call.language, agent_id, exclude_call=call.id),
        "callback": _callback(session, callback) if callback else None,
    }


def callback_context(session: Session, callback: Callback, agent_id: int | None) -> dict[str, Any]:
    """The screen pop for a callback reserved to the agent before any call exists: who, and why they asked."""
    return {
        "call_sid": callback.current_call_sid,
        "call_id": None,
        "direction": Direction.CALLBACK,
        "outcome": callback.state,
        "started_at": None,
        "notes": "",
        "complaint": None,
        **_customer(session, callback.customer_id, callback.phone, callback.language, agent_id, exclude_call=None),
        "callback": _callback(session, callback),
    }


def _customer(session: Session, customer_id: int | None, number: str | None, language: str, agent_id: int | None,
              exclude_call: int | None) -> dict[str, Any]:
    customer = session.get(Customer, customer_id) if customer_id else None
    history: dict[str, Any] = {"with_company": 0, "with_you": 0, "recent": []}
    complaints: list[dict[str, Any]] = []
    if customer is not None:
        theirs = (Call.customer_id == customer.id, Call.answered_at.is_not(None), Call.id != (exclude_call or 0))
        counts = session.execute(
            select(func.count(), func.count().filter(Call.agent_id == agent_id)).select_from(Call).where(*theirs)
        ).one()
        recent = session.execute(
            select(Call.started_at, Call.outcome, Agent.name)
            .outerjoin(Agent, Agent.id == Call.agent_id)
            .where(*theirs)
            .order_by(Call.started_at.desc())
            .limit(RECENT_CALLS)
        ).all()
        history = {
            "with_company": counts[0],
            "with_you": counts[1],
            "recent": [{"started_at": _iso(at), "outcome": outcome, "agent": name} for at, outcome, name in recent],
        }
        complaints = register.listing(session, register.query(customer_id=customer.id, open_only=True))
    last_agent = customer.last_agent if customer is not None else None
    remembered = _memory(session, customer, agent_id, exclude_call) if customer is not None else {}
    return {
        **remembered,
        "caller": {
            "number": number,
            "name": customer.name if customer is not None else None,
            "language": (customer.language if customer is not None else None) or language,
        },
        "previous_calls": history,
        "last_agent": {"identity": last_agent.identity, "name": last_agent.name} if last_agent else None,
        "open_complaints": complaints,
    }


def _memory(session: Session, customer: Customer, agent_id: int | None, exclude_call: int | None) -> dict[str, Any]:
    """What we remember of them: profile, last contacts (with players for their recorded reasons), what we owe."""
    remembered = memory.remember(session, customer, exclude_call=exclude_call)
    add_players(session, remembered["contacts"], agent_id)
    return {
        "customer": memory.jsonable(remembered["profile"]),
        "contacts": memory.jsonable(remembered["contacts"]),
        "owed": memory.jsonable(remembered["owed"]),
        "customer_page": url_for("customers.page", customer_id=customer.id),
    }


def add_players(session: Session, contacts: list[dict[str, Any]], agent_id: int | None) -> None:
    """A contact's recorded reason gets the URL of its player where this agent may hear it (None: a supervisor)."""
    for contact in contacts:
        reason = contact.get("reason")
        if not reason or reason["state"] != RecordingState.STORED:
            continue
        recording = session.get(Recording, reason["recording_id"])
        if recording is not None and (agent_id is None or may_hear(session, recording, agent_id)):
            reason["url"] = url_for("agent.recording", recording_id=recording.id)


def _callback(session: Session, callback: Callback) -> dict[str, Any]:
    recording = session.get(Recording, callback.reason_recording_id) if callback.reason_recording_id else None
    stored = recording is not None and recording.state == RecordingState.STORED
    complaint = session.get(Complaint, callback.complaint_id) if callback.complaint_id else None
    owner = callback.preferred_agent
    return {
        "id": callback.id,
        "kind": callback.kind,
        "about": callback.about,
        "complaint": complaint.reference if complaint else None,
        "owner": {"identity": owner.identity, "name": owner.name} if owner else None,
        "state": callback.state,
        "queued_at": _iso(callback.queued_at),
        "due_at": _iso(callback.due_at),
        "promised_by": _iso(callback.promised_by),
        "attempts": callback.attempts,
        "reason_url": url_for("agent.recording", recording_id=recording.id) if stored and recording else None,
        "reason_state": recording.state if recording is not None else None,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
