"""An agent's dated promise ("I will call you on Thursday at 10:00 about the refund"), kept by the one who made it.

It is saved at once as a dated callback owned by that agent (the callback machinery rings the owner first at its
time, another agent who speaks the customer's language after PROMISE_GRACE_MINUTES, and retries inside
PROMISE_WINDOW_MINUTES), with the SMS that confirms the date in the customer's language, in one unit of work: once
the promise is committed, so is its text. What cannot be kept is refused before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from babel.dates import format_datetime
from sqlalchemy import select

from directo.core.config import Config
from directo.core.hours import BusinessHours
from directo.core.models import Agent, Call, Callback, Customer
from directo.core.services import Services
from directo.core.states import OPEN, CallbackKind, CallbackState, SmsTopic
from directo.core.unit_of_work import work
from recordings import sms
from routing import callbacks
from routing.errors import Refused

MAX_ABOUT = 300
# Further ahead than this it is a plan, not a promise to a customer on the phone.
FURTHEST = timedelta(days=90)
DATE_FORMAT = {"es": "EEEE d 'de' MMMM 'a las' HH:mm", "en": "EEEE d MMMM 'at' HH:mm"}
SMS_TEXT = {
    "es": "Le llamaremos el {when}, {zone}, para hablar de: {about}",
    "en": "We will call you on {when}, {zone}, about: {about}",
}


@dataclass(frozen=True)
class Promised:
    callback_id: int
    due_at: datetime
    owner: str
    words: str  # the date and time as the customer's SMS says it
    created: bool  # False: the same promise was already made (a double click, a retry)


def in_words(at: datetime, hours: BusinessHours, language: str) -> str:
    """The date and time on the center's clock, as a person says it in `language`, with the zone named."""
    local = hours.local(at)
    language = language if language in DATE_FORMAT else "en"
    return f"{format_datetime(local, DATE_FORMAT[language], locale=language)}, " \
           f"{format_datetime(local, 'VVVV', locale=language)}"


def sms_text(at: datetime, hours: BusinessHours, language: str, about: str) -> str:
    language = language if language in SMS_TEXT else "en"
    when, zone = in_words(at, hours, language).rsplit(", ", 1)
    return SMS_TEXT[language].format(when=when, zone=zone, about=about.rstrip("."))


def read_time(text: str, hours: BusinessHours) -> datetime:
    """ISO 8601 as a person or a script writes it; without an offset, on the center's clock."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise Refused(f"{text!r} is not a date and time: use ISO 8601, e.g. 2026-03-12T10:00") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=hours.zone)
    return value.astimezone(UTC)


def check(config: Config, due_at: datetime, now: datetime, number: str | None) -> None:
    """Refuse a promise that cannot be kept, saying why: nobody to call, a time gone, or the center closed."""
    hours = config.hours
    if number is None:
        raise Refused("the caller's number is withheld: we cannot call them, so we cannot promise to")
    local = f"{hours.local(due_at):%Y-%m-%d %H:%M} ({hours.zone.key})"
    if due_at <= now:
        raise Refused(f"{local} is in the past: promise a time to come")
    if due_at > now + FURTHEST:
        raise Refused(f"{local} is more than {FURTHEST.days} days ahead: promise a nearer date")
    if not hours.is_open(due_at):
        raise Refused(f"{local} is outside business hours ({hours.describe()}): promise a time when we are open")


def _about(text: str) -> str:
    about = " ".join((text or "").split())
    if not about:
        raise Refused("say what the call will be about: it is on the owner's screen and in the customer's SMS")
    if len(about) > MAX_ABOUT:
        raise Refused(f"keep what it is about under {MAX_ABOUT} characters")
    return about


def promise(svc: Services, call_sid: str, at: str | datetime, about: str, by: str, *, on_any_call: bool = False,
            status_url: str | None = None) -> Promised:
    """`by` promises, on `call_sid` (their own call, unless `on_any_call`: a supervisor or a script), to call the
    customer at `at` about `about`; the confirmation SMS is queued once the promise is committed."""
    config = svc.config
    about = _about(about)
    due_at = read_time(at, config.hours) if isinstance(at, str) else at.astimezone(UTC)
    with work(svc.db) as unit:
        session = unit.session
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is None:
            raise Refused(f"no call {call_sid}")
        owner = session.scalar(select(Agent).where(Agent.identity == by, Agent.active.is_(True)))
        if owner is None:
            raise Refused(f"no active agent {by!r} to own the promise")
        if not on_any_call and call.agent_id != owner.id:
            raise Refused(f"call {call_sid} is not {by}'s call")
        customer = session.get(Customer, call.customer_id) if call.customer_id else None
        check(config, due_at, unit.now, customer.phone if customer and not customer.forgotten_at else None)
        assert customer is not None
        language = customer.language or call.language
        same = session.scalar(select(Callback).where(
            Callback.customer_id == customer.id, Callback.kind == CallbackKind.PROMISE, Callback.state.in_(OPEN),
            Callback.due_at == due_at, Callback.about == about, Callback.preferred_agent_id == owner.id))
        if same is not None:
            return Promised(same.id, due_at, by, in_words(due_at, config.hours, language), created=False)
        owed = callbacks.schedule(
            session, CallbackKind.PROMISE, phone=customer.phone, language=language, customer_id=customer.id,
            owner_id=owner.id, due_at=due_at, window=timedelta(minutes=config.promise_window_minutes),
            grace=timedelta(minutes=config.promise_grace_minutes), now=unit.now, about=about,
            origin_call_id=call.id, created_by=by)
        unit.event(call.id, "promise-made", {"callback_id": owed.id, "by": by, "due_at": due_at.isoformat(),
                                             "about": about})
        text = sms.compose(session, SmsTopic.PROMISE, owed.id, customer.phone,
                           sms_text(due_at, config.hours, language, about))
        text_id, promised = text.id, Promised(owed.id, due_at, by, in_words(due_at, config.hours, language), True)
        unit.after_commit.append(lambda: sms.enqueue_send(svc, text_id, status_url or sms.status_url(svc)))
    return promised


def fulfil(svc: Services, callback_id: int, call_sid: str, by: str) -> None:
    """The customer called before the promise's time and `by` did what was promised on that call: nobody needs
    ringing any more. Only on a call with that customer, and only while the promise still waits."""
    with work(svc.db) as unit:
        session = unit.session
        owed = session.get(Callback, callback_id)
        call = session.scalar(select(Call).where(Call.call_sid == call_sid))
        if owed is None or owed.kind != CallbackKind.PROMISE:
            raise Refused(f"no promise {callback_id}")
        if call is None or call.customer_id != owed.customer_id:
            raise Refused(f"call {call_sid} is not with the customer promise {callback_id} was made to")
        if not callbacks.fulfil(session, callback_id, by, unit.now):
            state = owed.state
            if state == CallbackState.DONE:
                return
            raise Refused(f"promise {callback_id} is {state}: only a promise that still waits can be marked done")
        unit.event(call.id, "promise-kept-on-call", {"callback_id": callback_id, "by": by})
