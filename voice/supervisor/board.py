"""The live board: who is on what right now, who still waits for a callback, and today's figures.

Pushed to open boards by voice.streams: agents' changes as they happen, and this snapshot every few seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from directo.core.models import Agent, Call, Callback, Complaint, Customer, utcnow
from directo.core.services import Services
from directo.core.states import OPEN, UNFINISHED, AgentStatus, CallbackState, CallOutcome, Direction, SmsState
from routing import promise_report
from routing.callback_report import flag
from routing.presence import presence

# "Answered by a person within N seconds": the service level the floor is held to.
ANSWER_TARGET_SECONDS = 20


@dataclass(frozen=True)
class Today:
    """Today's calls, callbacks and complaints (UTC day), loaded once for the figures and the charts."""

    since: datetime
    calls: list[Any]
    callbacks: list[Callback]
    complaints: list[Complaint]


def load_today(session: Session, now: datetime | None = None) -> Today:
    now = now or utcnow()
    since = datetime(now.year, now.month, now.day, tzinfo=UTC)
    calls = session.execute(select(Call.started_at, Call.answered_at, Call.outcome, Call.agent_id,
                                   Call.previous_agent_id, Call.direction).where(Call.started_at >= since)).all()
    callbacks = session.scalars(select(Callback).where(
        (Callback.promised_by >= since) | Callback.state.in_(OPEN))).all()
    complaints = session.scalars(select(Complaint).where(Complaint.flagged_at >= since)
                                 .options(selectinload(Complaint.messages))).all()
    return Today(since, list(calls), list(callbacks), list(complaints))


def kept(callback: Callback, now: datetime) -> str:
    """How a promise stands: kept, late (done after the deadline), broken (missed or past due), open or cancelled."""
    if callback.state == CallbackState.DONE:
        return "kept" if callback.closed_at is not None and callback.closed_at <= callback.promised_by else "late"
    if callback.state == CallbackState.CANCELLED:
        return CallbackState.CANCELLED
    if callback.state == CallbackState.MISSED or now > callback.promised_by:
        return "broken"
    return "open"


def _share(part: int, whole: int) -> dict[str, Any]:
    return {"count": part, "of": whole, "percent": round(100 * part / whole) if whole else None}


def figures(today: Today, now: datetime) -> dict[str, Any]:
    inbound = [c for c in today.calls if c.direction == Direction.INBOUND and c.outcome not in UNFINISHED]
    fast = [c for c in inbound if c.answered_at is not None
            and (c.answered_at - c.started_at).total_seconds() <= ANSWER_TARGET_SECONDS]
    known = [c for c in inbound if c.outcome == CallOutcome.ANSWERED and c.previous_agent_id is not None]
    promises = [kept(cb, now) for cb in today.callbacks if cb.promised_by >= today.since]
    decided = [p for p in promises if p in ("kept", "late", "broken")]
    acknowledged = [c for c in today.complaints if c.spoken_at is not None
                    and any(m.state == SmsState.DELIVERED for m in c.reference_texts)]
    return {
        "answer_target": ANSWER_TARGET_SECONDS,
        "answered_fast": _share(len(fast), len(inbound)),
        "previous_agent": _share(sum(c.agent_id == c.previous_agent_id for c in known), len(known)),
        "callbacks_on_time": _share(decided.count("kept"), len(decided)),
        "complaints_acknowledged": _share(len(acknowledged), len(today.complaints)),
        "calls": len(inbound),
    }


def _on_calls(session: Session, live: dict[str, dict[str, str]]) -> dict[str, str]:
    """Who each busy agent is talking to: the caller's name or number, for calls and for callbacks."""
    sids = [s["call"] for s in live.values() if s.get("call") and not s["call"].startswith("callback:")]
    callbacks = [int(s["call"].split(":", 1)[1]) for s in live.values()
                 if (s.get("call") or "").startswith("callback:") and s["call"].split(":", 1)[1].isdigit()]
    who: dict[str, str] = {}
    if sids:
        for sid, caller, name in session.execute(select(Call.call_sid, Call.caller, Customer.name).outerjoin(
                Customer, Customer.id == Call.customer_id).where(Call.call_sid.in_(sids))):
            who[sid] = name or caller or "withheld number"
    if callbacks:
        for cb_id, phone, name in session.execute(select(Callback.id, Callback.phone, Customer.name).outerjoin(
                Customer, Customer.id == Callback.customer_id).where(Callback.id.in_(callbacks))):
            who[f"callback:{cb_id}"] = f"callback to {name or phone}"
    return who


def snapshot(svc: Services) -> dict[str, Any]:
    """The whole board as JSON: the page renders it first, then merges each pushed change and snapshot."""
    return {**who_is_on_what(svc), "figures": todays_figures(svc)}


def who_is_on_what(svc: Services) -> dict[str, Any]:
    """The agents' rows and the callbacks waiting: what open boards are sent afresh every few seconds.

    Only reads (never SQLite's write lock, which the webhooks need); each agent's row carries `v`, the version of
    its presence, so a snapshot read before a change that was already pushed does not undo it.
    """
    now = utcnow()
    live_presence = presence(svc)
    live_presence.promote_due(now.timestamp())  # wrap-ups that ran out show as available, and are pushed so
    live = live_presence.states(fields=("status", "call", "since", "until", "v"))
    with svc.db.reading() as connection, Session(bind=connection) as session:
        people = session.execute(select(Agent.identity, Agent.name, Agent.status, Agent.active)
                                 .order_by(Agent.identity)).all()
        who = _on_calls(session, live)
        waiting = session.execute(select(func.count(), func.min(Callback.promised_by))
                                  .where(Callback.state.in_(OPEN))).one()
        promises = promise_report.board(session, svc.config, now)
    agents = []
    for person in people:
        if not person.active:
            continue
        state = live.get(person.identity, {})
        call = state.get("call") or None
        agents.append({"identity": person.identity, "name": person.name,
                       "status": state.get("status") or person.status or AgentStatus.OFFLINE, "call": call,
                       "with": who.get(call or ""), "since": float(state.get("since") or 0) or None,
                       "until": float(state.get("until") or 0) or None, "v": int(state.get("v") or 0)})
    oldest = waiting[1]
    return {
        "agents": agents,
        "waiting_callbacks": waiting[0],
        "oldest_promise": oldest.isoformat() if oldest else None,
        "oldest_flag": flag(CallbackState.QUEUED, oldest, now) if oldest else None,
        "promises": promises,
    }


def todays_figures(svc: Services) -> dict[str, Any]:
    """Today's figures, from every call of the day: the costliest part, so open boards get it less often."""
    now = utcnow()
    with svc.db.reading() as connection, Session(bind=connection) as session:
        return figures(load_today(session, now), now)
