"""Promises as supervisors read them: each with its date, its owner and how it stands; per agent and per day (on the
center's clock) how many were kept on time, late or missed, and how many their owner missed (another agent kept
them after the grace window)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from directo.core.config import Config
from directo.core.models import Agent, Callback, Customer, SmsMessage, utcnow
from directo.core.states import HELD, OPEN, CallbackKind, CallbackState, SmsTopic

ON_TIME, LATE, MISSED, WAITING, CANCELLED = "on time", "late", "missed", "waiting", "cancelled"
COUNTED = (ON_TIME, LATE, MISSED, WAITING, CANCELLED)


def standing(callback: Callback, now: datetime) -> str:
    """Kept on time (the customer reached inside the window), late, missed (not reached, or the window gone with
    nobody having called), still waiting, or cancelled."""
    if callback.state == CallbackState.DONE:
        return ON_TIME if callback.closed_at is not None and callback.closed_at <= callback.promised_by else LATE
    if callback.state == CallbackState.CANCELLED:
        return CANCELLED
    if callback.state == CallbackState.MISSED or (callback.state not in HELD and now > callback.promised_by):
        return MISSED
    return WAITING


def owner_missed(callback: Callback) -> bool:
    """Another agent took it: its owner was away, offline or busy when it fell due, for longer than the grace."""
    return callback.agent_id is not None and callback.agent_id != callback.preferred_agent_id


def _day_bounds(config: Config, day: date) -> tuple[datetime, datetime]:
    zone = config.hours.zone
    start = datetime.combine(day, time(), tzinfo=zone)
    return start, datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)


def today(config: Config, now: datetime | None = None) -> date:
    return config.hours.local(now or utcnow()).date()


def promises(session: Session, config: Config, *, everything: bool = False, day: date | None = None,
             now: datetime | None = None) -> list[dict[str, Any]]:
    """Promises due on `day` (the center's day), or waiting, or (`everything`) all; soonest first."""
    now = now or utcnow()
    owner, keeper = aliased(Agent), aliased(Agent)
    query = (
        select(Callback, Customer.name, owner.identity, keeper.identity)
        .outerjoin(Customer, Customer.id == Callback.customer_id)
        .outerjoin(owner, owner.id == Callback.preferred_agent_id)
        .outerjoin(keeper, keeper.id == Callback.agent_id)
        .where(Callback.kind == CallbackKind.PROMISE)
        .order_by(Callback.due_at, Callback.id)
    )
    if not everything:
        start, end = _day_bounds(config, day or today(config, now))
        query = query.where(Callback.state.in_(OPEN) | ((Callback.due_at >= start) & (Callback.due_at < end)))
    rows = session.execute(query).all()
    texts = _texts(session, [row[0].id for row in rows])
    hours = config.hours
    return [{
        "id": cb.id,
        "due_at": cb.due_at.isoformat(),
        "due_local": f"{hours.local(cb.due_at):%Y-%m-%d %H:%M}",
        "day": hours.local(cb.due_at).date().isoformat(),
        "customer": name or cb.phone,
        "phone": cb.phone,
        "owner": owner_identity,
        "made_by": cb.created_by,
        "about": cb.about,
        "state": cb.state,
        "standing": standing(cb, now),
        "agent": keeper_identity,
        "kept_by": keeper_identity if cb.state == CallbackState.DONE else None,
        "owner_missed": owner_missed(cb),
        "attempts": cb.attempts,
        "sms": texts.get(cb.id),
        "closed_at": cb.closed_at.isoformat() if cb.closed_at else None,
        "close_reason": cb.close_reason,
    } for cb, name, owner_identity, keeper_identity in rows]


def _texts(session: Session, ids: list[int]) -> dict[int, str]:
    """The state of each promise's latest confirmation text."""
    if not ids:
        return {}
    found: dict[int, str] = {}
    for subject, state in session.execute(select(SmsMessage.subject_id, SmsMessage.state).where(
            SmsMessage.topic == SmsTopic.PROMISE, SmsMessage.subject_id.in_(ids)).order_by(SmsMessage.id)):
        found[subject] = state
    return found


def by_agent_and_day(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per owner and per day: how their promises stand, and how many another agent kept for them."""
    tally: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys((*COUNTED, "owner_missed"), 0))
    for row in rows:
        counts = tally[(row["day"], row["owner"] or "-")]
        counts[row["standing"]] += 1
        counts["owner_missed"] += row["owner_missed"]
    return [{"day": day, "owner": owner, **counts} for (day, owner), counts in sorted(tally.items())]


def board(session: Session, config: Config, now: datetime) -> dict[str, Any]:
    """Today's promises for the live board: per agent, and each one an owner missed."""
    rows = [row for row in promises(session, config, now=now) if row["day"] == today(config, now).isoformat()]
    return {
        "day": today(config, now).isoformat(),
        "by_agent": by_agent_and_day(rows),
        "owner_missed": [{"owner": r["owner"], "customer": r["customer"], "due_local": r["due_local"][11:],
                          "taken_by": r["agent"], "standing": r["standing"]} for r in rows if r["owner_missed"]],
    }
