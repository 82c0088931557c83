"""Units of work: what a webhook, a job or a page changes commits together, with its timeline and its side effects.

`once` makes a Twilio webhook exactly-once: each (CallSid, event) is handled once and its TwiML replayed to
redeliveries. `work` is the same unit without a receipt, for jobs and pages. Live-state (Redis) changes that the
commit must not outlive are undone if it fails; side effects that must follow the record (screen pops, jobs) run
only once it is committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse

from directo.core.db import Database, insert_or_ignore
from directo.core.jobs import current_services
from directo.core.models import CallEvent, WebhookReceipt, utcnow

logger = logging.getLogger(__name__)

_CLAIM = {
    dialect: insert_or_ignore(dialect, WebhookReceipt).returning(WebhookReceipt.id)
    for dialect in ("sqlite", "postgresql")
}
_ANSWER = (
    update(WebhookReceipt)
    .where(WebhookReceipt.id == bindparam("receipt_id"))
    .values(response=bindparam("response"))
)
_INSERT_EVENT = insert(CallEvent)

# Pruning deletes in batches, so SQLite's single write lock is never held for long while calls come in.
PRUNE_BATCH = 5000


@dataclass
class Work:
    """One unit of work: its session, its clock, and what to do around its commit."""

    session: Session
    now: datetime = field(default_factory=utcnow)
    # Redis changes to reverse if the commit fails (an agent reserved for a call that was never recorded).
    undo: list[Callable[[], object]] = field(default_factory=list)
    # Side effects that must only happen once the record is committed (screen pops, job enqueues).
    after_commit: list[Callable[[], object]] = field(default_factory=list)
    _events: list[dict[str, Any]] = field(default_factory=list)

    def event(self, call_id: int, kind: str, detail: dict[str, Any]) -> None:
        """A line on the call's timeline, written with the rest of the unit."""
        self._events.append({"call_id": call_id, "at": self.now, "kind": kind, "detail": detail})

    def flush_events(self) -> None:
        """All of this unit's timeline rows in one statement."""
        if self._events:
            self.session.connection().execute(_INSERT_EVENT, self._events)
            self._events.clear()


@dataclass
class Unit(Work):
    """A webhook's unit of work: its receipt, and the answer Twilio gets (stored for redeliveries)."""

    receipt_id: int = 0
    response: str | None = None


@dataclass
class Replay:
    response: str


@contextmanager
def _committing(db: Database) -> Iterator[tuple[Session, list[Work]]]:
    """Commit or roll back one session; undo the live state of a failed unit, run side effects of a committed one."""
    units: list[Work] = []
    try:
        with db.session() as session:
            yield session, units
            for unit in units:
                unit.flush_events()
    except BaseException:
        for unit in units:
            for step in reversed(unit.undo):
                try:
                    step()
                except Exception:  # the original failure matters more than a failed compensation
                    logger.exception("could not undo a live-state change")
        raise
    for unit in units:
        for step in unit.after_commit:
            try:
                step()
            except Exception:  # the record is committed; a lost side effect is logged, not raised
                logger.exception("after-commit step failed")


@contextmanager
def work(db: Database) -> Iterator[Work]:
    """A unit of work for a job, a page or a command."""
    with _committing(db) as (session, units):
        unit = Work(session)
        units.append(unit)
        yield unit


@contextmanager
def once(db: Database, call_sid: str, event: str) -> Iterator[Unit | Replay]:
    """Yield a Unit for the first delivery, a Replay of the stored answer for any later one.

    The receipt row and everything the handler writes commit together, so a crash leaves no half-handled
    event: the redelivery simply runs the handler again.
    """
    with _committing(db) as (session, units):
        # The Core connection, not the ORM layer: this runs on every webhook, while the phone rings.
        connection = session.connection()
        claimed = connection.execute(
            _CLAIM[db.engine.dialect.name], {"call_sid": call_sid, "event": event, "received_at": utcnow()}
        ).scalar()
        if claimed is None:
            stored = session.scalar(
                select(WebhookReceipt.response).where(WebhookReceipt.call_sid == call_sid,
                                                      WebhookReceipt.event == event)
            )
            logger.info("replayed webhook %s for %s", event, call_sid)
            yield Replay(stored or "")
            return
        unit = Unit(session, receipt_id=claimed)
        units.append(unit)
        yield unit
        if unit.response is not None:
            connection.execute(_ANSWER, {"receipt_id": claimed, "response": unit.response})


def run_once(
    db: Database,
    sid: str,
    event: str,
    step: Callable[[Unit], VoiceResponse],
    on_replay: Callable[[], object] | None = None,
) -> str:
    """One step of a call's life, once per (call, event): its TwiML, or the first answer again for a repeat."""
    with once(db, sid, event) as unit:
        if isinstance(unit, Replay):
            if on_replay is not None:
                on_replay()
            return unit.response
        unit.response = str(step(unit))
    return unit.response


def prune(db: Database, older_than: datetime) -> int:
    """Delete receipts received before `older_than`; how many went.

    A receipt guards against Twilio redelivering a webhook, which it does within seconds; past that it is
    bookkeeping that would grow by several rows per call for ever. The call's own record and timeline stay.
    """
    deleted = 0
    while True:
        with db.session() as session:
            oldest = (
                select(WebhookReceipt.id)
                .where(WebhookReceipt.received_at < older_than)
                .order_by(WebhookReceipt.received_at)
                .limit(PRUNE_BATCH)
            )
            count = session.execute(delete(WebhookReceipt).where(WebhookReceipt.id.in_(oldest))).rowcount
        deleted += count
        if count < PRUNE_BATCH:
            return deleted


def prune_old_receipts() -> int:
    """The hourly RQ job (see `directo.core.periodic`): prune receipts older than WEBHOOK_RECEIPT_DAYS."""
    svc = current_services()
    return prune(svc.db, utcnow() - timedelta(days=svc.config.webhook_receipt_days))
