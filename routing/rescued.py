"""Calls the last-resort rescue put through while the database failed (the web edge's never-a-500 handler rings
the free agents without writing anything): noted in Redis at once, and written to the call log by the worker once
the database answers again, with what Twilio says became of them. An outage of the record loses no call from it."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from redis import Redis, RedisError
from sqlalchemy import select
from twilio.base.exceptions import TwilioException

from directo.core.db import insert_or_ignore
from directo.core.jobs import current_services
from directo.core.models import Agent, Call, CallEvent, utcnow
from directo.core.services import Services
from directo.core.states import FINAL_CALL_STATUSES, CallOutcome, CallStatus, Direction
from directo.core.twilio_client import twilio_client
from routing.directory import ensure_customer, find, normalise_number

logger = logging.getLogger(__name__)

NOTES = "directo:rescued-calls"
_INSERT_CALL = {dialect: insert_or_ignore(dialect, Call).returning(Call.id) for dialect in ("sqlite", "postgresql")}


def note(redis: Redis, call_sid: str, from_raw: str, rung: list[str]) -> None:
    """Remember a call put through with no record; best effort, since Redis may be what failed too."""
    try:
        redis.hsetnx(NOTES, call_sid, json.dumps({"from": from_raw, "at": utcnow().isoformat(), "rung": rung}))
    except RedisError:
        logger.exception("call %s: put through by the rescue, and it could not be noted for the record", call_sid)


def record_rescued(svc: Services) -> int:
    """Write each noted call the record lacks (a call recorded meanwhile is left as it is); a note is forgotten
    only once its call is on record, so a database still failing keeps it for the next run."""
    written = 0
    for sid, raw in svc.redis.hgetall(NOTES).items():
        call_sid = sid.decode()
        written += _record(svc, call_sid, json.loads(raw))
        svc.redis.hdel(NOTES, call_sid)
    return written


def record_rescued_job() -> int:
    """The periodic job (see `directo.core.periodic`)."""
    return record_rescued(current_services())


def _record(svc: Services, call_sid: str, noted: dict[str, Any]) -> bool:
    config = svc.config
    seen = _as_twilio_saw_it(svc, call_sid)
    with svc.db.session() as session:
        connection = session.connection()
        caller = ensure_customer(connection, find(connection, normalise_number(noted["from"], config.default_region),
                                                  config.default_language))
        answered_by = seen["agent"]
        agent_id = session.scalar(select(Agent.id).where(
            (Agent.identity == answered_by.removeprefix("client:")) | (Agent.phone == answered_by))) \
            if answered_by else None
        call_id = connection.execute(_INSERT_CALL[connection.dialect.name], {
            "call_sid": call_sid, "direction": Direction.INBOUND, "from_raw": noted["from"][:255] or None,
            "caller": caller.number, "customer_id": caller.customer_id, "language": caller.language,
            "previous_agent_id": caller.previous_agent_id, "started_at": datetime.fromisoformat(noted["at"]),
            "agent_id": agent_id, "answered_at": seen["answered_at"], "ended_at": seen["ended_at"],
            "outcome": CallOutcome.ANSWERED if seen["answered_at"] else CallOutcome.FALLBACK, "dial_attempts": 0,
            "callback_id": None, "notes": None}).scalar()
        if call_id is None:
            return False
        session.add(CallEvent(call_id=call_id, kind="rescued", detail={
            "rung": noted["rung"], "why": "the database failed; recorded once it answered again",
            "twilio_status": seen["status"], "answered_by": seen["agent"] or None}))
    logger.warning("call %s: put through during a database failure, now on record", call_sid)
    return True


def _as_twilio_saw_it(svc: Services, call_sid: str) -> dict[str, Any]:
    """The call's status and end, and the leg a person answered, if any; nothing when Twilio cannot say."""
    seen: dict[str, Any] = {"status": None, "ended_at": None, "answered_at": None, "agent": ""}
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
    answered = [leg for leg in legs if leg.status == CallStatus.COMPLETED and int(leg.duration or 0) > 0]
    if answered:
        seen["answered_at"], seen["agent"] = answered[0].start_time, answered[0].to or ""
    return seen
