"""The call log's record of a call and every way it changes: the only module that writes `calls.outcome`.

Several of a call's webhooks may arrive at once (the caller's status callback and the <Dial> action, say), so
the transitions that must happen once per call are guarded UPDATEs that say whether they won.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from directo.core.db import insert_or_ignore
from directo.core.models import Agent, Call, CallEvent
from directo.core.states import CallOutcome

logger = logging.getLogger(__name__)

_INSERT = {dialect: insert_or_ignore(dialect, Call).returning(Call.id) for dialect in ("sqlite", "postgresql")}
# Twilio ends any call after four hours: a longer duration is not one Twilio sent.
_LONGEST_SECONDS = 4 * 3600


def record(session: Session, values: dict[str, Any]) -> int | None:
    """The new call's id; None when the CallSid is already on record (a replay)."""
    connection = session.connection()
    return connection.execute(_INSERT[connection.dialect.name], values).scalar()


def find(session: Session, sid: str) -> Call | None:
    call = session.scalar(select(Call).where(Call.call_sid == sid))
    if call is None:
        logger.warning("webhook for unknown call %s", sid)
    return call


def seconds(value: object) -> int:
    """A duration Twilio sent (DialCallDuration, CallDuration) as whole seconds; junk counts as none."""
    try:
        parsed = float(str(value).strip())
    except ValueError:
        return 0
    return int(parsed) if math.isfinite(parsed) and 0 <= parsed <= _LONGEST_SECONDS else 0


def _guarded(session: Session, call: Call, *where: Any, **values: Any) -> bool:
    return bool(session.execute(update(Call).where(Call.id == call.id, *where).values(**values)).rowcount)


def ringing(call: Call, agent_id: int, attempt: int) -> None:
    """The next agent's phone rings for this call."""
    call.agent_id = agent_id
    call.dial_attempts = attempt
    call.outcome = CallOutcome.RINGING


def no_person(session: Session, call_id: int, outcome: CallOutcome, callback_id: int | None = None) -> None:
    """Nobody took the call: a callback was promised, or (withheld number) nobody can call back."""
    session.execute(update(Call).where(Call.id == call_id).values(outcome=outcome, agent_id=None,
                                                                  callback_id=callback_id))


def answered(session: Session, call: Call, at: datetime) -> bool:
    """A person picked up at `at`: the caller's wait ends there (once, whichever event says it first)."""
    return _guarded(session, call, Call.answered_at.is_(None), answered_at=at, outcome=CallOutcome.ANSWERED)


def answered_before(session: Session, call: Call, now: datetime, duration: object) -> bool:
    """Answered, by the conversation's length: when the event that said so first was lost, work back to it."""
    return answered(session, call, now - timedelta(seconds=seconds(duration)))


def finished(session: Session, call: Call, now: datetime) -> bool:
    """The conversation is over: True for the one event that ends it (the agent's wrap-up and credit follow)."""
    return _guarded(session, call, Call.ended_at.is_(None), ended_at=now, outcome=CallOutcome.ANSWERED)


def not_reached(session: Session, call: Call, outcome: CallOutcome, now: datetime) -> None:
    """A callback's attempt ended without a conversation (customer or agent did not answer)."""
    _guarded(session, call, Call.ended_at.is_(None), outcome=outcome, ended_at=now)


def abandoned(call: Call) -> None:
    """The caller hung up before anyone answered."""
    call.outcome = CallOutcome.ABANDONED


def ended(call: Call, now: datetime) -> None:
    call.ended_at = call.ended_at or now


def tried(session: Session, call: Call) -> frozenset[str]:
    """The agents already rung for this call, from its timeline."""
    details = session.scalars(
        select(CallEvent.detail).where(CallEvent.call_id == call.id, CallEvent.kind == "agent-reserved")
    )
    return frozenset(d["agent"] for d in details)


def taken_by(session: Session, call: Call, to: str) -> None:
    """Whoever answered a leg of the ring-everyone fallback is the call's agent, by the leg's To (client:identity
    or a number)."""
    identity = to.removeprefix("client:")
    call.agent = session.scalar(select(Agent).where((Agent.identity == identity) | (Agent.phone == to)))


def speak(session: Session, customer_id: int, language: str) -> None:
    """The customer's language changed during a call: what is still to be said on it is said in theirs."""
    session.execute(update(Call).where(Call.customer_id == customer_id, Call.ended_at.is_(None))
                    .values(language=language))


# Timeline details in the words of an agent or a customer (what was promised): gone with the customer.
_THEIR_WORDS = frozenset({"about", "notes", "summary"})


def _scrub(value: Any, number: str, token: str) -> Any:
    if isinstance(value, str):
        return value.replace(number, token)
    if isinstance(value, dict):
        return {key: _scrub(item, number, token) for key, item in value.items() if key not in _THEIR_WORDS}
    if isinstance(value, list):
        return [_scrub(item, number, token) for item in value]
    return value


def forget(session: Session, customer_id: int, number: str, token: str) -> dict[str, int]:
    """A customer asked to be forgotten: their calls stay in the log (who took them, when, how they ended) with
    `token` for their number and without the notes taken on them; their timelines no longer hold the number."""
    calls = session.scalars(select(Call).where(Call.customer_id == customer_id)).all()
    ids = [call.id for call in calls]
    noted = sum(1 for call in calls if call.notes)
    session.execute(update(Call).where(Call.customer_id == customer_id).values(caller=token, from_raw=token,
                                                                               notes=None))
    scrubbed = 0
    for event in session.scalars(select(CallEvent).where(CallEvent.call_id.in_(ids))) if ids else []:
        clean = _scrub(event.detail, number, token)
        if clean != event.detail:
            event.detail = clean
            scrubbed += 1
    return {"calls": len(ids), "notes": noted, "events": scrubbed}
