"""Forgetting a customer on request: what identifies them goes, the proof of their complaints stays.

Their name, how to say it, their standing notes and the notes taken on their calls are removed; their number is
replaced by a random token everywhere we can change it (customer, calls, timelines, callbacks, texts, complaints);
what we still owed them is cancelled; their recorded callback reasons are deleted (ours, and Twilio's copy by a
job). A complaint's proof (reference, summary, recording, texts, audit trail) is kept, as Ley 44/2006 art. 13.4
asks; the audit log is append-only and hash-chained, so the number stays in the entries written before. The
forgetting itself is an audit entry (without the number). One unit of work: all of it, or none.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from rq import Retry
from sqlalchemy import delete, func, select
from twilio.base.exceptions import TwilioRestException

from directo.core.jobs import current_services
from directo.core.models import AuditEntry, Call, Callback, Customer, Recording, WebhookReceipt
from directo.core.services import Services
from directo.core.states import HELD, LIVE, UNFINISHED, RecordingState
from directo.core.twilio_client import twilio_client
from directo.core.unit_of_work import work
from recordings import audit, sms
from recordings.complaints import proof_of
from recordings.storage import LocalStorage
from routing import call_records, callbacks, customers
from routing.directory import normalise_number
from routing.errors import Conflict, Refused

logger = logging.getLogger(__name__)
TOKEN_PREFIX = "forgotten-"
DELETE_RETRY = Retry(max=5, interval=[10, 60, 300, 900, 3600])
WHY_COMPLAINTS = ("Ley 44/2006 art. 13.4: the customer must be able to prove their complaint, and we that we "
                  "acknowledged it")
WHY_AUDIT = ("the audit log is append-only and hash-chained: changing an entry would break the proof of every "
             "entry after it, so the number stays in the entries written before today")


@dataclass
class Forgotten:
    """What forgetting removed and what it kept, each with why, as the command prints it."""

    customer_id: int
    token: str
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    audit_hash: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "token": self.token, "removed": self.removed, "kept": self.kept,
                "audit_hash": self.audit_hash}


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _busy(session: Any, customer_id: int) -> str | None:
    """Work in flight with this customer that forgetting would pull the ground from under."""
    live = session.scalar(select(Call.call_sid).where(Call.customer_id == customer_id, Call.ended_at.is_(None),
                                                      Call.outcome.in_(LIVE | UNFINISHED)).limit(1))
    if live:
        return f"a call with this customer is in progress ({live}): forget them once it has ended"
    held = session.scalar(select(Callback.id).where(Callback.customer_id == customer_id,
                                                    Callback.state.in_(HELD)).limit(1))
    if held:
        return f"callback {held} to this customer is being placed: forget them once it has ended"
    fetching = session.scalar(select(func.count()).select_from(Recording).join(
        Callback, Callback.reason_recording_id == Recording.id).where(
        Callback.customer_id == customer_id, Recording.state == RecordingState.PENDING))
    if fetching:
        return "a recording of this customer is still being fetched: try again in a minute"
    return None


def forget(svc: Services, number: str, by: str) -> Forgotten:
    """Forget the customer behind `number` (as a person types it); refused while work with them is in flight."""
    phone = normalise_number(number, svc.config.default_region)
    if phone is None:
        raise Refused(f"{number!r} is not a phone number")
    with work(svc.db) as unit:
        session, now = unit.session, unit.now
        customer = session.scalar(select(Customer).where(Customer.phone == phone))
        if customer is None:
            raise Refused(f"no customer with number {phone} (already forgotten, or never called)")
        busy = _busy(session, customer.id)
        if busy:
            raise Conflict(busy)
        token = TOKEN_PREFIX + secrets.token_hex(8)
        report = Forgotten(customer.id, token)
        had = [label for label, value in (("name", customer.name), ("how to say it", customer.say_as),
                                          ("standing notes", customer.notes)) if value]
        # Callbacks, then calls, then the customer: the order webhooks lock them in.
        cancelled, renumbered, reasons = callbacks.forget(session, customer.id, token, by, now)
        calls = call_records.forget(session, customer.id, phone, token)
        erased = customers.forget(session, customer, token, by, now)
        report.removed.append(f"{', '.join(had) or 'no name, hint or standing notes on record'}; "
                              f"{_n(erased, 'earlier value')} in the profile's history (who changed it and when "
                              "stays)")
        report.removed.append(f"the notes of {_n(calls['notes'], 'call')}; the number on {_n(calls['calls'], 'call')} "
                              f"and {_n(calls['events'], 'timeline entry', 'timeline entries')}, now {token}")
        report.removed.append(f"{_n(cancelled, 'call')} we still owed them, cancelled; the number, what was promised "
                              f"and the recorded reason on {_n(renumbered, 'callback')}")
        texts, redacted = sms.forget(session, phone, token)
        report.removed.append(f"the number on {_n(texts, 'text')}, and the words of the {redacted} not about a "
                              "complaint")
        removed_files = _recordings(unit, svc, reasons)
        report.removed.append(f"{_n(len(reasons), 'recorded callback reason')}: {removed_files}")
        sids = select(Call.call_sid).where(Call.customer_id == customer.id)
        receipts = session.execute(delete(WebhookReceipt).where(WebhookReceipt.call_sid.in_(sids))).rowcount
        report.removed.append(f"{_n(receipts, 'webhook receipt')} of their calls (the TwiML sent for them named "
                              "them)")
        _kept(session, report, proof_of(session, customer.id, token), customer.language)
        report.audit_hash = audit.append(session, "customer-forgotten", {
            "customer_id": customer.id, "token": token, "by": by, "removed": report.removed, "kept": report.kept})
    return report


def _recordings(unit: Any, svc: Services, ids: list[int]) -> str:
    """Our copies go once the forgetting is committed; Twilio's copies are deleted by a job (retried)."""
    if not ids:
        return "none"
    recordings = unit.session.scalars(select(Recording).where(Recording.id.in_(ids))).all()
    files = [r.path for r in recordings if r.path and not _shared(unit.session, r)]
    sids = [r.twilio_sid for r in recordings if r.twilio_sid]
    unit.session.execute(delete(Recording).where(Recording.id.in_(ids)))
    storage = LocalStorage(svc.config.recordings_dir)
    unit.after_commit.append(lambda: [storage.delete(path) for path in files])
    unit.after_commit.append(lambda: [svc.queue.enqueue(delete_twilio_recording, sid, retry=DELETE_RETRY)
                                      for sid in sids])
    return f"our {_n(len(files), 'file')} deleted, Twilio's {_n(len(sids), 'copy', 'copies')} deleted by a job"


def _shared(session: Any, recording: Recording) -> bool:
    """Files are stored by content: another recording with the same bytes keeps the file."""
    return bool(session.scalar(select(func.count()).select_from(Recording).where(
        Recording.path == recording.path, Recording.id != recording.id)))


def _kept(session: Any, report: Forgotten, complaints: list[Any], language: str | None) -> None:
    report.kept.append("the calls themselves (when, which agent, how long, how they ended), without the number or "
                       "notes: the call log's figures stay right")
    if language:
        report.kept.append(f"their language ({language}), which identifies nobody")
    for complaint in complaints:
        recording = complaint.recording
        entries = session.scalar(select(func.count()).select_from(AuditEntry)
                                 .where(AuditEntry.complaint_id == complaint.id))
        sound = f"its recording (sha256 {recording.sha256})" if recording and recording.sha256 else "no recording"
        report.kept.append(f"complaint {complaint.reference}: reference, summary, "
                           f"{_n(len(complaint.messages), 'text')} with the reference and their delivery states, "
                           f"{sound}, {_n(entries, 'audit entry', 'audit entries')}; because {WHY_COMPLAINTS}; "
                           f"{WHY_AUDIT}")


def delete_twilio_recording(sid: str) -> None:
    """RQ job: a forgotten customer's recording is deleted at Twilio too (a recording already gone is fine)."""
    try:
        twilio_client(current_services().config).recordings(sid).delete()
    except TwilioRestException as error:
        if error.status != 404:
            logger.exception("recording %s: Twilio did not delete it", sid)
            raise
