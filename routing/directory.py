"""The caller directory: who is calling, from their number alone, so nobody has to ask."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import phonenumbers
from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.orm import Session

from directo.core.db import insert_or_ignore
from directo.core.languages import SUPPORTED_LANGUAGES
from directo.core.models import Agent, Callback, Complaint, Customer, utcnow
from directo.core.states import COMPLAINT_OPEN, DATED, OPEN

# What carriers and Twilio put in From when the caller withholds their number.
WITHHELD = {"anonymous", "restricted", "unknown", "private", "unavailable", "+266696687", "+86282452253", "+8656696"}

_SPANISH_REGIONS = set("ES MX AR CO CL PE VE EC GT CU BO DO HN PY SV NI CR PA UY PR GQ".split())
_ENGLISH_REGIONS = set("GB US IE CA AU NZ ZA MT GI JM TT BS BB".split())


def normalise_number(raw: str | None, default_region: str) -> str | None:
    """E.164 for a dialable caller number; None for withheld, malformed, client: or sip: callers."""
    if not raw:
        return None
    raw = raw.strip()
    if raw.lower() in WITHHELD or raw.startswith(("client:", "sip:")):
        return None
    try:
        number = phonenumbers.parse(raw, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def guess_language(number: str | None, default: str) -> str:
    """A first caller's language from their country, when it is one we serve; the configured default otherwise."""
    if number:
        parsed = phonenumbers.parse(number)
        region = phonenumbers.region_code_for_number(parsed) or phonenumbers.region_code_for_country_code(
            parsed.country_code
        )
        if region in _SPANISH_REGIONS and "es" in SUPPORTED_LANGUAGES:
            return "es"
        if region in _ENGLISH_REGIONS and "en" in SUPPORTED_LANGUAGES:
            return "en"
    return default


@dataclass(frozen=True)
class CallerContext:
    """Everything the agent's screen shows before they say hello."""

    number: str | None
    language: str
    customer_id: int | None = None
    name: str | None = None
    # The agent this caller should reach when free: who owes them a dated call, else who served them last.
    previous_agent: str | None = None
    previous_agent_id: int | None = None
    previous_agent_name: str | None = None
    previous_calls: int = 0
    open_complaints: tuple[str, ...] = field(default_factory=tuple)


# The agent who owes this customer a dated call (a promise, a complaint's explanation), else the owner of their
# open complaint due first: the one they should reach, before their last agent. Subqueries of the one statement a
# known caller costs, so they add no round trip.
_OWES = (
    select(Callback.preferred_agent_id)
    .where(Callback.phone == Customer.phone, Callback.kind.in_(DATED), Callback.state.in_(OPEN))
    .order_by(Callback.due_at)
    .limit(1)
    .scalar_subquery()
)
_OWNS = (
    select(Complaint.owner_id)
    .where(Complaint.customer_id == Customer.id, Complaint.state.in_(COMPLAINT_OPEN))
    .order_by(Complaint.due_at)
    .limit(1)
    .scalar_subquery()
)
_BY_NUMBER = (
    select(Customer.id, Customer.name, Customer.language, Customer.answered_calls,
           Agent.id, Agent.identity, Agent.name, Agent.active)
    .outerjoin(Agent, Agent.id == func.coalesce(_OWES, _OWNS, Customer.last_agent_id))
    .where(Customer.phone == bindparam("number"))
)
_CREATE = {
    dialect: insert_or_ignore(dialect, Customer).returning(Customer.id) for dialect in ("sqlite", "postgresql")
}
_OPEN_COMPLAINTS = (
    select(Complaint.reference)
    .where(Complaint.customer_id == bindparam("customer_id"), Complaint.state.in_(COMPLAINT_OPEN))
    .order_by(Complaint.id.desc())
    .limit(5)
)


def find(connection: Connection, number: str | None, default_language: str) -> CallerContext:
    """Who is calling, read-only (one or two indexed statements, while the phone rings).

    A first-time caller comes back with no customer id: `ensure_customer` creates them in the write that follows.
    """
    if number is None:
        return CallerContext(number=None, language=default_language)
    row = connection.execute(_BY_NUMBER, {"number": number}).first()
    if row is None:
        return CallerContext(number=number, language=guess_language(number, default_language))
    customer_id, name, language, answered, agent_id, identity, agent_name, active = row
    complaints = connection.execute(_OPEN_COMPLAINTS, {"customer_id": customer_id}).scalars().all()
    return CallerContext(
        number=number,
        language=language or default_language,
        customer_id=customer_id,
        name=name,
        previous_agent=identity if active else None,
        previous_agent_id=agent_id,
        previous_agent_name=agent_name,
        previous_calls=answered,
        open_complaints=tuple(complaints),
    )


def ensure_customer(connection: Connection, caller: CallerContext) -> CallerContext:
    """The caller as a customer on record: created on their first call (once, whatever the concurrency)."""
    if caller.number is None or caller.customer_id is not None:
        return caller
    created = connection.execute(
        _CREATE[connection.dialect.name],
        {"phone": caller.number, "language": caller.language, "answered_calls": 0, "created_at": utcnow()},
    ).scalar()
    if created is None:  # another call from this number created them a moment ago
        created = connection.execute(select(Customer.id).where(Customer.phone == caller.number)).scalar_one()
    return replace(caller, customer_id=created)


def lookup(session: Session, number: str | None, default_language: str) -> CallerContext:
    """Find, or create, the customer behind a number within a unit of work."""
    connection = session.connection()
    return ensure_customer(connection, find(connection, number, default_language))


def credit(session: Session, customer_id: int | None, agent_id: int) -> None:
    """A conversation with this agent happened: they become the customer's known agent, and it counts."""
    if customer_id is not None:
        session.execute(update(Customer).where(Customer.id == customer_id).values(
            last_agent_id=agent_id, answered_calls=Customer.answered_calls + 1))
