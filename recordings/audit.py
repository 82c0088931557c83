"""The hash-chained audit log: each entry's hash covers its content and the previous hash, so an edit shows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from directo.core.models import AuditEntry, utcnow

GENESIS = "0" * 64
# PostgreSQL advisory lock key for appenders: two concurrent appends must not both extend the same head.
_LOCK_KEY = 0x44495245  # "DIRE"


def canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(prev_hash: str, at: datetime, complaint_id: int | None, event: str, payload: str) -> str:
    material = "\n".join([prev_hash, at.isoformat(), str(complaint_id or ""), event, payload])
    return hashlib.sha256(material.encode()).hexdigest()


def lock(session: Session) -> None:
    """Take the appenders' lock for the rest of the transaction (again is harmless).

    A transition that will append takes it before it locks its own row, so every writer takes the two in the same
    order and none waits for the other.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    # SQLite needs no lock: every write transaction here begins IMMEDIATE, so appenders already queue.


def append(session: Session, event: str, payload: dict[str, Any], complaint_id: int | None = None) -> str:
    """Add an entry in the caller's transaction, so the event and its audit record commit together."""
    lock(session)
    session.flush()
    prev = session.scalar(select(AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)) or GENESIS
    at = utcnow()
    body = canonical(payload)
    entry_hash = digest(prev, at, complaint_id, event, body)
    session.add(AuditEntry(at=at, complaint_id=complaint_id, event=event, payload=body, prev_hash=prev,
                           hash=entry_hash))
    session.flush()
    return entry_hash


@dataclass(frozen=True)
class Verification:
    entries: int
    head: str
    broken_at: int | None = None
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def entries(session: Session, complaint_id: int | None = None) -> Iterator[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id)
    if complaint_id is not None:
        query = query.where(AuditEntry.complaint_id == complaint_id)
    return iter(session.scalars(query.execution_options(yield_per=500)))


def verify(session: Session) -> Verification:
    """Walk the whole chain; the first entry whose links or content do not add up is reported."""
    prev, count = GENESIS, 0
    for entry in entries(session):
        if entry.prev_hash != prev:
            return Verification(count, prev, entry.id, "does not follow the entry before it (removed or reordered)")
        if digest(entry.prev_hash, entry.at, entry.complaint_id, entry.event, entry.payload) != entry.hash:
            return Verification(count, prev, entry.id, "content does not match its hash (edited)")
        prev, count = entry.hash, count + 1
    return Verification(count, prev)
