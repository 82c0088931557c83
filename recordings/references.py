"""Gap-free complaint references: R-<year>-<number>, numbered in the same transaction as the complaint."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from directo.core.db import insert_or_ignore
from directo.core.models import ComplaintCounter

PREFIX = "R"
_CREATE_YEAR = {dialect: insert_or_ignore(dialect, ComplaintCounter) for dialect in ("sqlite", "postgresql")}


def format_reference(year: int, number: int) -> str:
    return f"{PREFIX}-{year}-{number:06d}"


def next_reference(session: Session, year: int) -> str:
    """The next number of the year: the UPDATE's row lock serialises issuers and a rollback returns the number."""
    connection = session.connection()
    connection.execute(_CREATE_YEAR[connection.dialect.name], {"year": year, "last": 0})
    number = connection.execute(
        update(ComplaintCounter)
        .where(ComplaintCounter.year == year)
        .values(last=ComplaintCounter.last + 1)
        .returning(ComplaintCounter.last)
    ).scalar_one()
    return format_reference(year, number)


def spelled(reference: str) -> str:
    """One character at a time, comma-separated, so text-to-speech reads it slowly and nobody mishears 42 as 4-2."""
    return ", ".join(ch for ch in reference if ch.isalnum())
