"""The callback promise and every way its state changes: the only module that writes `callbacks.state`.

The database is the system of record for every promise; Redis only holds who is free right now. Each transition
is one guarded UPDATE (`... WHERE id = :id AND state IN :expected`) that says whether it won, so concurrent
dispatchers, jobs, webhooks and supervisors can never take one callback twice or undo each other's step.

    queued -reserve-> reserved -dial-> dialing -keep-> done
       ^                 |  ^            |  \\-miss-> missed
       +----requeue------+  +--undial----+
    queued/reserved -served-> done;  queued -cancel-> cancelled;  queued -reassign/change_owner-> queued
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from directo.core.config import Config
from directo.core.models import Agent, Call, Callback, CallEvent, Recording
from directo.core.states import HELD, OPEN, AgentStatus, CallbackKind, CallbackState, CallOutcome, Direction
from routing import call_records
from routing.callback_policy import promise_minutes

# Answered calls whose handling time makes the estimate: recent enough to reflect today's pace.
HANDLING_SAMPLE = 50
SERVED = "the customer reached a person by calling in"
KEPT = "kept: the customer answered"
FULFILLED = "kept on a call with the customer"


_HELD_PREFIX = "callback:"


def reservation_key(callback_id: int) -> str:
    """What the agent's presence says they are busy with while a callback is theirs."""
    return f"{_HELD_PREFIX}{callback_id}"


def held_callback(held: str) -> int | None:
    """The callback an agent's presence says they hold, if what they hold is a callback."""
    number = held.removeprefix(_HELD_PREFIX)
    return int(number) if number != held and number.isdigit() else None


def open_callback(session: Session, phone: str) -> Callback | None:
    """The call-back this customer was already promised, if any: one per customer, however often they call."""
    return session.scalar(
        select(Callback).where(Callback.phone == phone, Callback.kind == CallbackKind.CALL_BACK,
                               Callback.state.in_(OPEN)).order_by(Callback.id).limit(1)
    )


def _recent_handling_seconds(session: Session, wrapup_seconds: int) -> float | None:
    rows = session.execute(
        select(Call.answered_at, Call.ended_at)
        .where(Call.answered_at.is_not(None), Call.ended_at.is_not(None))
        .order_by(Call.id.desc())
        .limit(HANDLING_SAMPLE)
    ).all()
    if not rows:
        return None
    talk = sum((ended - answered).total_seconds() for answered, ended in rows) / len(rows)
    return talk + wrapup_seconds


def queue(
    session: Session,
    config: Config,
    *,
    phone: str,
    language: str,
    customer_id: int | None,
    origin_call_id: int | None,
    preferred_agent_id: int | None,
    now: datetime,
) -> tuple[Callback, int]:
    """A call-back for a caller nobody was free to take, in the call's unit of work, with the minutes promised:
    an honest estimate, kept for their previous agent alone for CALLBACK_PREFERRED_MINUTES."""
    ahead = session.scalar(
        select(func.count()).select_from(Callback).where(Callback.state.in_(OPEN), Callback.language == language)
    ) or 0
    on_duty = session.scalar(
        select(func.count())
        .select_from(Agent)
        .where(Agent.active.is_(True), Agent.status == AgentStatus.AVAILABLE, Agent.languages_csv.contains(language))
    ) or 0
    minutes = promise_minutes(
        ahead, on_duty, _recent_handling_seconds(session, config.wrapup_seconds), config.callback_promise_minutes
    )
    callback = _new(session, CallbackKind.CALL_BACK, phone=phone, language=language, customer_id=customer_id,
                    origin_call_id=origin_call_id, preferred_agent_id=preferred_agent_id, queued_at=now, due_at=now,
                    promised_by=now + timedelta(minutes=minutes),
                    exclusive_until=now + timedelta(minutes=config.callback_preferred_minutes))
    return callback, minutes


def schedule(
    session: Session,
    kind: CallbackKind,
    *,
    phone: str,
    language: str,
    customer_id: int | None,
    owner_id: int,
    due_at: datetime,
    window: timedelta,
    grace: timedelta,
    now: datetime,
    about: str | None = None,
    complaint_id: int | None = None,
    origin_call_id: int | None = None,
    created_by: str | None = None,
) -> Callback:
    """A dated call we owe (a promise, a complaint's explanation or follow-up): its owner is rung first at `due_at`
    and alone may take it for `grace`; then any agent who speaks the customer's language; kept inside `window`."""
    return _new(session, kind, phone=phone, language=language, customer_id=customer_id, origin_call_id=origin_call_id,
                preferred_agent_id=owner_id, queued_at=now, due_at=due_at, promised_by=due_at + window,
                exclusive_until=due_at + grace, about=about, complaint_id=complaint_id, created_by=created_by)


def _new(session: Session, kind: CallbackKind, **values: Any) -> Callback:
    callback = Callback(kind=kind, state=CallbackState.QUEUED, attempts=0, **values)
    session.add(callback)
    session.flush()
    return callback


def _move(session: Session, callback_id: int, expected: Iterable[CallbackState], *extra: Any, **values: Any) -> bool:
    """The one compare-and-set every transition is: True when this caller made the change."""
    return bool(session.execute(
        update(Callback)
        .where(Callback.id == callback_id, Callback.state.in_(tuple(expected)), *extra)
        .values(**values)
    ).rowcount)


def reserve(session: Session, callback_id: int, agent_id: int, now: datetime) -> bool:
    """Hand a queued callback to the agent a dispatcher reserved for it."""
    return _move(session, callback_id, [CallbackState.QUEUED], state=CallbackState.RESERVED, agent_id=agent_id,
                 due_at=now)


def dial(session: Session, callback_id: int, now: datetime) -> bool:
    """Its job is about to place the agent-first call: from here, running the job again must not dial again."""
    return _move(session, callback_id, [CallbackState.RESERVED], state=CallbackState.DIALING, due_at=now)


def undial(session: Session, callback_id: int, error: str) -> bool:
    """Twilio refused the call: back to reserved, for the job's retry to place it."""
    return _move(session, callback_id, [CallbackState.DIALING], state=CallbackState.RESERVED, last_error=error)


def _on(call_sid: str) -> Any:
    """The callback is on this call, or on none yet (its job may have died before recording it)."""
    return or_(Callback.current_call_sid.is_(None), Callback.current_call_sid == call_sid)


def adopt(session: Session, callback: Callback, call_sid: str, agent_id: int, now: datetime,
          *, answered: bool = False) -> bool:
    """The agent-first call this callback is on, with its row in the call log, whoever hears of it first (the job
    that placed it, the sweep asking Twilio after that job died, or the agent's answer); a second call for one
    callback is never adopted. `answered`: the agent picked up, one more try at reaching the customer.

    The callback's row is locked before the call's is written, in every path, so they never deadlock.
    """
    more = {"attempts": Callback.attempts + 1} if answered else {}
    if not _move(session, callback.id, [CallbackState.DIALING], _on(call_sid), current_call_sid=call_sid, **more):
        return False
    call_records.record(session, {
        "call_sid": call_sid, "direction": Direction.CALLBACK, "from_raw": callback.phone, "caller": callback.phone,
        "customer_id": callback.customer_id, "language": callback.language, "agent_id": agent_id,
        "previous_agent_id": callback.preferred_agent_id, "dial_attempts": callback.attempts, "started_at": now,
        "outcome": CallOutcome.RINGING, "callback_id": callback.id, "answered_at": None, "ended_at": None,
        "notes": None,
    })
    return True


def requeue(session: Session, callback_id: int, *, due_at: datetime, error: str | None,
            call_sid: str | None = None) -> bool:
    """Back in line at its original place (queued_at is kept), due again at `due_at`; the agent lets it go.

    With `call_sid`, only while the callback is dialing on that call: a stale call's news changes nothing.
    """
    values: dict[str, Any] = {"state": CallbackState.QUEUED, "agent_id": None, "current_call_sid": None,
                              "due_at": due_at}
    if error:
        values["last_error"] = error
    if call_sid is None:
        return _move(session, callback_id, HELD, **values)
    return _move(session, callback_id, [CallbackState.DIALING], _on(call_sid), **values)


def _close(session: Session, callback_id: int, expected: Iterable[CallbackState], state: CallbackState,
           reason: str, now: datetime) -> bool:
    return _move(session, callback_id, expected, state=state, closed_at=now, close_reason=reason)


def keep(session: Session, callback_id: int, now: datetime) -> bool:
    """The customer answered: the promise is kept."""
    return _close(session, callback_id, [CallbackState.DIALING], CallbackState.DONE, KEPT, now)


def miss(session: Session, callback_id: int, reason: str, now: datetime) -> bool:
    """The customer could not be reached inside the promise: recorded, and shown as missed."""
    return _close(session, callback_id, [CallbackState.DIALING], CallbackState.MISSED, reason, now)


def served(session: Session, callback_id: int, now: datetime) -> bool:
    """The customer reached a person by calling in: the promise is no longer needed, unless already dialing."""
    return _close(session, callback_id, [CallbackState.QUEUED, CallbackState.RESERVED], CallbackState.DONE,
                  SERVED, now)


def cancel(session: Session, callback_id: int, by: str, reason: str, now: datetime) -> bool:
    """A supervisor withdraws a queued promise; the reason is kept in the callback's close reason."""
    return _close(session, callback_id, [CallbackState.QUEUED], CallbackState.CANCELLED,
                  f"cancelled by {by}: {reason}", now)


def reassign(session: Session, callback_id: int, agent_id: int, now: datetime) -> bool:
    """A supervisor gives a queued promise to another agent, due at once."""
    return _move(session, callback_id, [CallbackState.QUEUED], preferred_agent_id=agent_id, due_at=now)


def change_owner(session: Session, callback_id: int, owner_id: int) -> bool:
    """A dated call whose subject changed hands (a complaint reassigned) goes to the new owner, at its date."""
    return _move(session, callback_id, [CallbackState.QUEUED], preferred_agent_id=owner_id)


def owed_for(session: Session, complaint_id: int, kinds: Iterable[CallbackKind],
             states: Iterable[CallbackState] = OPEN) -> list[Callback]:
    """The calls a complaint is owed (or was), oldest first."""
    return list(session.scalars(
        select(Callback).where(Callback.complaint_id == complaint_id, Callback.kind.in_(tuple(kinds)),
                               Callback.state.in_(tuple(states))).order_by(Callback.id)))


def fulfil(session: Session, callback_id: int, by: str, now: datetime) -> bool:
    """What a dated call was for was done on a call with the customer (they called in first): no need to ring."""
    return _close(session, callback_id, [CallbackState.QUEUED], CallbackState.DONE,
                  f"{FULFILLED} (by {by})", now)


def speak(session: Session, customer_id: int, language: str) -> int:
    """The customer's language changed: the calls we owe them wait for an agent who speaks it now."""
    return session.execute(update(Callback).where(Callback.customer_id == customer_id,
                                                  Callback.state == CallbackState.QUEUED)
                           .values(language=language)).rowcount


def served_by_calling_in(session: Session, phone: str, now: datetime) -> list[int]:
    """The call-backs a customer who just reached a person no longer needs; the ids of those closed. Dated calls
    stay: what was promised for a date still has to be said (the agent sees it due on the screen)."""
    candidates = session.scalars(
        select(Callback.id).where(Callback.phone == phone, Callback.kind == CallbackKind.CALL_BACK,
                                  Callback.state.in_((CallbackState.QUEUED, CallbackState.RESERVED)))
    ).all()
    return [callback_id for callback_id in candidates if served(session, callback_id, now)]


def attach_reason(session: Session, callback: Callback, recording: Recording) -> None:
    """What the customer said the callback is about, in their own words, for the agent to hear first."""
    session.add(recording)
    session.flush()
    callback.reason_recording_sid = recording.twilio_sid
    callback.reason_recording_url = recording.source_url
    callback.reason_recording_id = recording.id


def note(session: Session, callback: Callback, kind: str, detail: dict[str, Any], now: datetime) -> None:
    """A change to a promise, on the timeline of the call that made it."""
    if callback.origin_call_id is not None:
        session.add(CallEvent(call_id=callback.origin_call_id, at=now, kind=kind,
                              detail={"callback_id": callback.id, **detail}))



def forget(session: Session, customer_id: int, token: str, by: str, now: datetime) -> tuple[int, int, list[int]]:
    """A customer asked to be forgotten: what we still owed them is cancelled (there is no number to call), every
    callback keeps its dates and outcome but not their number, what was promised, nor their recorded reason.
    (callbacks cancelled, callbacks kept without the details, the reason recordings now unused)."""
    owed = session.scalars(select(Callback.id).where(Callback.customer_id == customer_id,
                                                     Callback.state == CallbackState.QUEUED)).all()
    cancelled = sum(cancel(session, callback_id, by, "the customer asked to be forgotten", now)
                    for callback_id in owed)
    reasons = [r for r in session.scalars(select(Callback.reason_recording_id).where(
        Callback.customer_id == customer_id, Callback.reason_recording_id.is_not(None))) if r is not None]
    renumbered = session.execute(update(Callback).where(Callback.customer_id == customer_id).values(
        phone=token, about=None, reason_recording_id=None, reason_recording_sid=None,
        reason_recording_url=None)).rowcount
    return cancelled, renumbered, reasons
