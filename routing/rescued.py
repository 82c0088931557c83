"""Calls the last-resort rescue answered while the database failed (the web edge's never-a-500 handler rings the
free agents, or promises a callback when nobody is free, without writing anything): noted in Redis at once, and put
on record once the database answers again, with what Twilio says became of them, and the promised callback queued.
An outage of the record loses no call from it, and breaks no promise made meanwhile."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from redis import Redis, RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioException

from directo.core.db import insert_or_ignore
from directo.core.jobs import current_services
from directo.core.models import Agent, Call, CallEvent, utcnow
from directo.core.services import Services
from directo.core.states import FINAL_CALL_STATUSES, CallOutcome, CallStatus, Direction
from directo.core.twilio_client import twilio_client
from routing import agents, callbacks
from routing.directory import CallerContext, ensure_customer, find, normalise_number
from routing.presence import presence

logger = logging.getLogger(__name__)

NOTES = "directo:rescued-calls"
_INSERT_CALL = {dialect: insert_or_ignore(dialect, Call) for dialect in ("sqlite", "postgresql")}


def note(redis: Redis, call_sid: str, from_raw: str, rung: list[str], *, callback: bool = False) -> bool:
    """Remember a call answered with no record (and whether it was promised a callback), added to what an earlier
    rescue of the same call noted; False when Redis, too, cannot keep it, and then nothing may be promised."""
    try:
        earlier = json.loads(redis.hget(NOTES, call_sid) or "{}")
        redis.hset(NOTES, call_sid, json.dumps({
            "from": from_raw, "at": earlier.get("at") or utcnow().isoformat(),
            "rung": sorted({*earlier.get("rung", []), *rung}), "callback": callback or earlier.get("callback", False)}))
    except RedisError:
        logger.exception("call %s: answered by the rescue, and it could not be noted for the record", call_sid)
        return False
    return True


def answered(svc: Services, answered_by: str, call_sid: str) -> bool:
    """An agent answered a call the rescue rang everyone for: busy on it in the live state at once, before the
    database (likely still failing) is asked anything, so that the next rescued call does not ring them too.
    `answered_by` is the leg's To: client:IDENTITY, or the number of an agent's phone."""
    if answered_by.startswith("client:"):
        identity: str | None = answered_by.removeprefix("client:")
    else:
        identity = next((who for who, state in presence(svc).states().items()
                         if answered_by and state.get("phone") == answered_by), None)
    return identity is not None and agents.took_unreserved(svc, identity, call_sid)


def record_rescued(svc: Services) -> int:
    """Put every noted call on record; a note is forgotten only once that is done, so a database still failing
    keeps it for the next run. Returns how many calls were new to the record."""
    return sum(record_one(svc, sid.decode()) for sid in svc.redis.hkeys(NOTES))


def record_rescued_job() -> int:
    """The periodic job (see `directo.core.periodic`)."""
    return record_rescued(current_services())


def record_one(svc: Services, call_sid: str) -> bool:
    """The noted call on record (a call recorded meanwhile is kept as it is, and given its promised callback)."""
    try:
        raw = svc.redis.hget(NOTES, call_sid)
    except RedisError:  # nothing noted can be read: nothing to record now; the sweep tries again
        return False
    if raw is None:
        return False
    noted = json.loads(raw)
    seen = _as_twilio_saw_it(svc, call_sid)
    config = svc.config
    with svc.db.session() as session:
        connection = session.connection()
        number = normalise_number(noted["from"], config.default_region)
        caller = ensure_customer(connection, find(connection, number, config.default_language))
        agent = _agent(session, seen["agent"])
        at = datetime.fromisoformat(noted["at"])
        written = connection.execute(_INSERT_CALL[connection.dialect.name], {
            "call_sid": call_sid, "direction": Direction.INBOUND, "from_raw": noted["from"][:255] or None,
            "caller": caller.number, "customer_id": caller.customer_id, "language": caller.language,
            "previous_agent_id": caller.previous_agent_id, "started_at": at,
            "agent_id": agent.id if agent else None, "answered_at": seen["answered_at"],
            "ended_at": seen["ended_at"], "dial_attempts": 0, "callback_id": None, "notes": None,
            "outcome": CallOutcome.ANSWERED if seen["answered_at"] else CallOutcome.FALLBACK}).rowcount
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
        detail: dict[str, Any] = {"rung": noted["rung"], "twilio_status": seen["status"],
                                  "answered_by": agent.identity if agent else None}
        if noted["callback"] and call.answered_at is None:
            detail["callback_id"] = _keep_promise(session, svc, call, caller, at)
        if written:
            session.add(CallEvent(call_id=call.id, kind="rescued", detail=detail))
    if agent is not None and seen["talking"]:  # still on it: not free for another call meanwhile
        agents.took_unreserved(svc, agent.identity, call_sid)
    svc.redis.hdel(NOTES, call_sid)
    if written:
        logger.warning("call %s: answered during a database failure, now on record", call_sid)
    return bool(written)


def _keep_promise(session: Session, svc: Services, call: Call, caller: CallerContext, at: datetime) -> int:
    """The callback the caller was promised: the one they already had, or one queued from when they called."""
    existing = callbacks.open_callback(session, caller.number or "")
    callback = existing or callbacks.queue(
        session, svc.config, phone=caller.number or "", language=caller.language, customer_id=caller.customer_id,
        origin_call_id=call.id, preferred_agent_id=caller.previous_agent_id, now=at)[0]
    call.outcome, call.callback_id, call.agent_id = CallOutcome.CALLBACK, callback.id, None
    return callback.id


def _agent(session: Session, answered_by: str) -> Agent | None:
    if not answered_by:
        return None
    return session.scalar(select(Agent).where(
        (Agent.identity == answered_by.removeprefix("client:")) | (Agent.phone == answered_by)))


def _as_twilio_saw_it(svc: Services, call_sid: str) -> dict[str, Any]:
    """The call's status and end, and the leg a person answered, if any; nothing when Twilio cannot say."""
    seen: dict[str, Any] = {"status": None, "ended_at": None, "answered_at": None, "agent": "", "talking": False}
    try:
        client = twilio_client(svc.config)
        call = client.calls(call_sid).fetch()
        legs = client.calls.list(parent_call_sid=call_sid, limit=20)
    except (TwilioException, OSError) as error:
        logger.warning("call %s: Twilio could not say how it went (%s); recorded as rung", call_sid, error)
        return seen
    seen["status"] = call.status
    if call.status in FINAL_CALL_STATUSES:
        seen["ended_at"] = call.end_time
    answered = [leg for leg in legs if leg.status == CallStatus.IN_PROGRESS
                or (leg.status == CallStatus.COMPLETED and int(leg.duration or 0) > 0)]
    if answered:
        leg = answered[0]
        seen.update(answered_at=leg.start_time, agent=leg.to or "", talking=leg.status == CallStatus.IN_PROGRESS)
    return seen
