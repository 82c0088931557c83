"""The SMS that gives the customer their complaint reference: sent by an RQ job, re-sent until delivered."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from redis import RedisError
from rq import Retry
from sqlalchemy import select
from twilio.rest import Client
from twilio.rest.api.v2010.account.message import MessageInstance
from twilio.twiml.voice_response import VoiceResponse

from directo.core.jobs import current_services
from directo.core.models import Complaint, SmsMessage, utcnow
from directo.core.services import Services
from directo.core.states import MESSAGE_STATUS, SMS_FINAL, SMS_IN_FLIGHT, SMS_RANK, SmsState
from directo.core.twilio_client import twilio_client
from directo.core.unit_of_work import Unit
from recordings import audit
from recordings.acknowledgement import sms_body
from recordings.attempts import describe, enqueue_once, last_attempt

logger = logging.getLogger(__name__)

# REST refusals (429/5xx, network) are retried by RQ; a message the carrier did not deliver is sent again.
SEND_RETRY = Retry(max=8, interval=[5, 15, 30, 60, 300, 900, 1800, 3600])
MAX_MESSAGES = 5
# A message still pending this long after its job last touched it has lost that job (a worker killed mid-send).
STALE = timedelta(minutes=2)
RESEND_AFTER = [60, 300, 900, 3600]
NOT_DELIVERED = SMS_FINAL - {SmsState.DELIVERED}


def status_url(svc: Services) -> str | None:
    """Where Twilio reports delivery; with no public URL the SMS still goes, its report is simply not asked for."""
    return svc.urls("complaints.twilio.sms_status") if svc.config.public_base_url else None


def enqueue_send(svc: Services, complaint_id: int, status_url: str | None, delay: int = 0, attempt: int = 0) -> bool:
    """False when Redis is unreachable: the complaint is kept, and the sweep (`resume_pending`) sends it later."""
    job_id = f"complaint-sms-{complaint_id}" + (f"-after-{attempt}" if attempt else "")
    try:
        return enqueue_once(svc.queue, job_id, send_sms, complaint_id, status_url, delay=delay, retry=SEND_RETRY)
    except RedisError:
        logger.exception("complaint %s: could not queue its SMS; the sweep will", complaint_id)
        return False


def send_sms(complaint_id: int, status_url: str | None) -> str | None:
    """RQ job: send the reference unless a message is already on its way or delivered (safe to rerun)."""
    svc = current_services()
    with svc.db.session() as session:
        complaint = session.get(Complaint, complaint_id)
        if complaint is None or not needs_message(complaint):
            return None
        message = next((m for m in complaint.messages if m.state == SmsState.PENDING), None)
        if message is None:
            message = SmsMessage(complaint_id=complaint.id, to=complaint.phone, attempts=0, state=SmsState.PENDING,
                                 body=sms_body(complaint.language, complaint.reference))
            session.add(message)
            session.flush()
        tried_before = message.attempts > 0
        message.attempts += 1
        message_id, to, body, reference = message.id, message.to, message.body, complaint.reference
        known = {m.message_sid for m in complaint.messages if m.message_sid}
    config = svc.config
    try:
        if not config.twilio_caller_id:
            raise RuntimeError("TWILIO_CALLER_ID is not set: there is no number to send the SMS from")
        client = twilio_client(config)
        sent = _sent_by_a_lost_job(client, to, body, known) if tried_before else None
        if sent is None:
            extra = {"status_callback": status_url} if status_url else {}
            sent = client.messages.create(to=to, from_=config.twilio_caller_id, body=body, **extra)
    except Exception as error:
        logger.exception("complaint %s: SMS %s not accepted", reference, message_id)
        _not_accepted(svc, message_id, error)
        raise
    with svc.db.session() as session:
        message = session.get(SmsMessage, message_id)
        message.message_sid = sent.sid
        message.state = MESSAGE_STATUS.get(sent.status or "", SmsState.ACCEPTED)
        message.last_error = None
        audit.append(session, "sms-accepted", {"reference": reference, "message_sid": sent.sid, "to": to},
                     complaint_id)
        if message.state in SMS_FINAL:  # its delivery report went to nobody
            audit.append(session, f"sms-{message.state}", {"reference": reference, "message_sid": sent.sid,
                                                          "error_code": None}, complaint_id)
    return sent.sid


def _sent_by_a_lost_job(client: Client, to: str, body: str, known: set[str]) -> MessageInstance | None:
    """A worker that died inside messages.create may have sent it: ask Twilio before texting the customer twice.

    The text carries the complaint's reference, so a message with it to this customer that none of the complaint's
    records knows is the one the dead job sent; no clock is compared (ours and Twilio's may disagree).
    """
    for message in client.messages.list(to=to, limit=20):
        if message.body == body and message.sid not in known:
            logger.warning("SMS %s to %s was sent by a job that died; adopting it", message.sid, to)
            return message
    return None


def needs_message(complaint: Complaint) -> bool:
    """A customer we can text, whose reference is neither delivered nor on its way, with attempts left."""
    if not complaint.phone:
        return False
    states = [m.state for m in complaint.messages]
    finished = sum(state in NOT_DELIVERED for state in states)
    return not any(state in SMS_IN_FLIGHT or state == SmsState.DELIVERED for state in states) \
        and finished < MAX_MESSAGES


def _not_accepted(svc: Services, message_id: int, error: Exception) -> None:
    with svc.db.session() as session:
        message = session.get(SmsMessage, message_id)
        message.last_error = describe(error)
        if last_attempt():
            message.state = SmsState.FAILED
            audit.append(session, "sms-not-sent", {"message_id": message_id, "error": message.last_error},
                         message.complaint_id)


def message_status(unit: Unit, svc: Services, form: Mapping[str, str], status_url: str) -> VoiceResponse:
    """Twilio's delivery report: delivered ends the matter; undelivered or failed sends the reference again."""
    session = unit.session
    message = session.scalar(select(SmsMessage).where(SmsMessage.message_sid == form.get("MessageSid", "")))
    state = MESSAGE_STATUS.get(form.get("MessageStatus", ""))
    if message is None or state is None or SMS_RANK[state] <= SMS_RANK[SmsState(message.state)]:
        return VoiceResponse()
    message.state = state
    message.updated_at = utcnow()
    if state not in SMS_FINAL:
        return VoiceResponse()
    error = form.get("ErrorCode")
    message.last_error = f"Twilio error {error}" if error else None
    complaint = message.complaint
    audit.append(session, f"sms-{state}", {"reference": complaint.reference, "message_sid": message.message_sid,
                                          "error_code": error}, complaint.id)
    if state != SmsState.DELIVERED:
        session.flush()
        if needs_message(complaint):
            failures = sum(m.state in NOT_DELIVERED for m in complaint.messages)
            delay = RESEND_AFTER[min(failures, len(RESEND_AFTER)) - 1]
            complaint_id = complaint.id
            unit.after_commit.append(lambda: enqueue_send(svc, complaint_id, status_url, delay))
        else:
            logger.error("complaint %s: reference not delivered by SMS after %s messages", complaint.reference,
                         len(complaint.messages))
    return VoiceResponse()


def unsent(svc: Services) -> list[tuple[int, int]]:
    """(complaint, attempt) for every reference that still needs a message and whose job is not alive.

    A pending message untouched for STALE lost its job (a killed worker): it is resumed too, under a job id
    of its own, since the dead job may still look 'started' to RQ.
    """
    stale = utcnow() - STALE
    with svc.db.session() as session:
        complaints = session.scalars(
            select(Complaint).where(Complaint.phone.is_not(None)).order_by(Complaint.id)
        ).all()
        found = []
        for complaint in complaints:
            pending = [m for m in complaint.messages if m.state == SmsState.PENDING]
            if needs_message(complaint) and all(m.updated_at < stale for m in pending):
                found.append((complaint.id, max((m.attempts for m in pending), default=0)))
        return found
