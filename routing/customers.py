"""A customer's profile and every way it changes: the only module that writes their name, how to say it, their
language and their standing notes.

A change is one guarded UPDATE on the revision the editor saw (`... WHERE id = :id AND revision = :seen`), so two
agents editing at once never overwrite each other unseen; each changed field is kept with who changed it, when,
what it was and what it became. Names are kept exactly as given, in any script (Núñez, O'Brien, 김민준).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from directo.core.languages import SUPPORTED_LANGUAGES
from directo.core.models import Customer, CustomerChange, name_key
from routing import call_records, callbacks
from routing.errors import Conflict, Refused

# What an agent may change, and how long each may be.
LIMITS = {"name": 200, "say_as": 200, "notes": 4000}
FIELDS = ("name", "say_as", "language", "notes")
FORGOTTEN = "forgotten"
# What forgetting a customer erases from the profile and its history; their language is no personal detail.
PERSONAL = ("name", "say_as", "notes")
# Line breaks and tabs belong in notes; no other control character belongs anywhere in a profile.
_LAYOUT = {"\n", "\t"}


@dataclass(frozen=True)
class Changed:
    customer_id: int
    revision: int
    fields: list[str] = field(default_factory=list)


def clean(name: str, value: Any) -> str | None:
    """A field as it will be stored, or a refusal that says what is wrong; blank clears it."""
    if name not in FIELDS:
        raise Refused(f"{name!r} is not part of a customer's profile (use {', '.join(FIELDS)})")
    if value is not None and not isinstance(value, str):
        raise Refused(f"{name}: give text")
    text = (value or "").replace("\r\n", "\n").strip()
    if name == "language":
        if text not in SUPPORTED_LANGUAGES:
            raise Refused(f"language {text!r} not served; use {', '.join(SUPPORTED_LANGUAGES)}")
        return text
    allowed = _LAYOUT if name == "notes" else set()
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text):
        raise Refused(f"{name}: control characters are not allowed")
    if len(text) > LIMITS[name]:
        raise Refused(f"{name}: at most {LIMITS[name]} characters ({len(text)} given)")
    return text or None


def change(session: Session, customer_id: int, wanted: dict[str, Any], by: str, now: datetime,
           seen: int | None = None) -> Changed:
    """Apply an agent's corrections, if the profile is still the one they saw (`seen`, its revision; None: as it
    is now, for scripts). Fields given as they already are change nothing and are not recorded."""
    cleaned = {name: clean(name, value) for name, value in wanted.items()}
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise Refused(f"no customer {customer_id}")
    if customer.forgotten_at is not None:
        raise Refused("this customer asked to be forgotten: their profile is no longer kept")
    if seen is not None and seen != customer.revision:
        raise Conflict(_changed_meanwhile(session, customer))
    diff = {name: value for name, value in cleaned.items() if getattr(customer, name) != value}
    if not diff:
        return Changed(customer.id, customer.revision)
    before = {name: getattr(customer, name) for name in diff}
    values: dict[str, Any] = {**diff, "revision": customer.revision + 1}
    if "name" in diff:
        values["name_key"] = name_key(diff["name"])
    if "language" in diff:  # what they speak now routes their calls and callbacks, and every prompt they hear
        # Callbacks, then calls, then the customer: the order every webhook locks them in, so none deadlock.
        callbacks.speak(session, customer.id, diff["language"])
        call_records.speak(session, customer.id, diff["language"])
    won = session.execute(update(Customer).where(Customer.id == customer.id, Customer.revision == customer.revision)
                          .values(**values)).rowcount
    if not won:  # the caller's unit of work rolls back with the refusal, the language changes too
        session.expire(customer)
        raise Conflict(_changed_meanwhile(session, customer))
    session.add_all(CustomerChange(customer_id=customer.id, at=now, by=by, field=name, old=before[name],
                                   new=value) for name, value in diff.items())
    session.expire(customer)
    return Changed(customer.id, values["revision"], list(diff))


def _changed_meanwhile(session: Session, customer: Customer) -> str:
    last = session.scalar(select(CustomerChange).where(CustomerChange.customer_id == customer.id)
                          .order_by(CustomerChange.id.desc()).limit(1))
    who = f" by {last.by} at {last.at:%H:%M:%S} UTC" if last else ""
    return f"the customer's profile was changed meanwhile{who}: reload it and make your change again"


def forget(session: Session, customer: Customer, token: str, by: str, now: datetime) -> int:
    """Their name, how to say it and their standing notes go, from the profile and from its history (who changed
    what, when, stays); their number becomes `token`. How many earlier values were erased from the history."""
    erased = session.execute(
        update(CustomerChange).where(CustomerChange.customer_id == customer.id,
                                     CustomerChange.field.in_(PERSONAL),
                                     (CustomerChange.old.is_not(None)) | (CustomerChange.new.is_not(None)))
        .values(old=None, new=None)).rowcount
    session.execute(update(Customer).where(Customer.id == customer.id).values(
        phone=token, name=None, name_key=None, say_as=None, notes=None, forgotten_at=now,
        revision=Customer.revision + 1))
    session.add(CustomerChange(customer_id=customer.id, at=now, by=by, field=FORGOTTEN, old=None, new=None))
    session.expire(customer)
    return erased
