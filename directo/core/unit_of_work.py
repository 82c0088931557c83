"""Exactly-once webhooks: each (CallSid, event) is handled once and its TwiML replayed to redeliveries."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from directo.core.db import Database, insert_or_ignore
from directo.core.jobs import current_services
from directo.core.models import WebhookReceipt, utcnow

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


# Pruning deletes in batches, so SQLite's single write lock is never held for long while calls come in.
PRUNE_BATCH = 5000


@dataclass
class Unit:
    """One webhook's unit of work; `undo` lists what to reverse in Redis if the database commit fails."""

    session: Session
    receipt_id: int
    response: str | None = None
    undo: list[Callable[[], object]] = field(default_factory=list)
    # Side effects that must only happen once the record is committed (screen pops, job enqueues).
    after_commit: list[Callable[[], object]] = field(default_factory=list)


@dataclass
class Replay:
    response: str


@contextmanager
def once(db: Database, call_sid: str, event: str) -> Iterator[Unit | Replay]:
    """Yield a Unit for the first delivery, a Replay of the stored answer for any later one.

    The receipt row and everything the handler writes commit together, so a crash leaves no half-handled
    event: the redelivery simply runs the handler again.
    """
    unit: Unit | None = None
    try:
        with db.session() as session:
            # The Core connection, not the ORM layer: this runs on every webhook, while the phone rings.
            connection = session.connection()
            claimed = connection.execute(
                _CLAIM[db.engine.dialect.name], {"call_sid": call_sid, "event": event, "received_at": utcnow()}
            ).scalar()
            if claimed is None:
                stored = session.scalar(
                    select(WebhookReceipt.response).where(
                        WebhookReceipt.call_sid == call_sid, WebhookReceipt.event == event
                    )
                )
                logger.info("replayed webhook %s for %s", event, call_sid)
                yield Replay(stored or "")
                return
            unit = Unit(session, claimed)
            yield unit
            if unit.response is not None:
                connection.execute(_ANSWER, {"receipt_id": claimed, "response": unit.response})
    except BaseException:
        for step in reversed(unit.undo if unit else []):
            try:
                step()
            except Exception:  # the original failure matters more than a failed compensation
                logger.exception("could not undo a live-state change for %s %s", call_sid, event)
        raise
    for step in unit.after_commit if unit else []:
        try:
            step()
        except Exception:  # the record is committed; a lost side effect is logged, not raised to Twilio
            logger.exception("after-commit step failed for %s %s", call_sid, event)


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
