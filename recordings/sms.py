"""Texts to customers that are promises: a complaint's reference (the proof the law asks for), a resolution the
customer could not be told on the phone, the date an agent promised to call. Each is a notice (topic, subject):
written in the same transaction as what owes it, sent by an RQ job, re-sent while carriers report it undelivered.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from redis import RedisError
from rq import Retry
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.rest import Client
from twilio.rest.api.v2010.account.message import MessageInstance
from twilio.twiml.voice_response import VoiceResponse

from directo.core.jobs import current_services
from directo.core.models import SmsMessage, utcnow
from directo.core.services import Services
from directo.core.states import MESSAGE_STATUS, SMS_FINAL, SMS_IN_FLIGHT, SMS_RANK, SmsState, SmsTopic
from directo.core.twilio_client import twilio_client
from directo.core.unit_of_work import Unit
from recordings import audit
from recordings.attempts import WAITING, describe, enqueue_once, last_attempt, status

logger = logging.getLogger(__name__)

# REST refusals (429/5xx, network) are retried by RQ; a message the carrier did not deliver is sent again.
SEND_RETRY = Retry(max=8, interval=[5, 15, 30, 60, 300, 900, 1800, 3600])
MAX_MESSAGES = 5
RESEND_AFTER = [60, 300, 900, 3600]
NOT_DELIVERED = SMS_FINAL - {SmsState.DELIVERED}


def compose(session: Session, topic: SmsTopic, subject_id: int, to: str, body: str,
            complaint_id: int | None = None) -> SmsMessage:
    """The first text of a notice, in the caller's transaction: once what owes it is committed, so is the text."""
    message = SmsMessage(topic=topic, subject_id=subject_id, complaint_id=complaint_id, to=to, body=body,
                         state=SmsState.PENDING, attempts=0)
    session.add(message)
    session.flush()
    return message


def status_url(svc: Services) -> str | None:
    """Where Twilio reports delivery; with no public URL the SMS still goes, its report is simply not asked for."""
    return svc.urls("complaints.twilio.sms_status") if svc.config.public_base_url else None


def enqueue_send(svc: Services, message_id: int, status_url: str | None, delay: int = 0, attempts: int = 0) -> bool:
    """False when Redis is unreachable: the text is kept, and the sweep (`unsent`) sends it later.

    One job per (text, attempts made): a job that died mid-send after counting its attempt may still look started
    to RQ, so resuming it takes a job id of its own.
    """
    try:
        return enqueue_once(svc.queue, f"sms-{message_id}-{attempts}", send_sms, message_id, status_url,
                            delay=delay, retry=SEND_RETRY)
    except RedisError:
        logger.exception("SMS %s: could not queue it; the sweep will", message_id)
        return False


def resume(svc: Services, message_id: int, attempts: int) -> bool:
    """The sweep's turn at a pending text: queued again unless one of its earlier jobs is waiting for its retry.
    (Each attempt's job has an id of its own, so without this every sweep during a long Twilio outage would start
    one more chain of retries for the same text.)"""
    if any(status(svc.queue, f"sms-{message_id}-{earlier}") in WAITING for earlier in range(attempts)):
        return False
    return enqueue_send(svc, message_id, status_url(svc), attempts=attempts)


def _notice(session: Session, message: SmsMessage) -> list[SmsMessage]:
    return list(session.scalars(select(SmsMessage).where(SmsMessage.topic == message.topic,
                                                         SmsMessage.subject_id == message.subject_id)
                                .order_by(SmsMessage.id)))


def needs_message(texts: list[SmsMessage]) -> bool:
    """A notice neither delivered nor on its way, with messages left to try."""
    states = [m.state for m in texts]
    finished = sum(state in NOT_DELIVERED for state in states)
    return not any(state in SMS_IN_FLIGHT or state == SmsState.DELIVERED for state in states) \
        and finished < MAX_MESSAGES


def send_sms(message_id: int, status_url: str | None) -> str | None:
    """RQ job: send a pending text unless its notice is already delivered or on its way (safe to rerun)."""
    svc = current_services()
    with svc.db.session() as session:
        message = session.get(SmsMessage, message_id)
        if message is None or message.state != SmsState.PENDING:
            return None
        notice = _notice(session, message)
        if not needs_message([m for m in notice if m.id != message.id]):
            session.delete(message)  # a late report said an earlier text arrived after all: nothing to send
            return None
        tried_before = message.attempts > 0
        message.attempts += 1
        to, body = message.to, message.body
        known = {m.message_sid for m in notice if m.message_sid}
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
        logger.warning("SMS %s to %s not accepted: %s", message_id, to, describe(error))  # RQ logs the traceback
        _not_accepted(svc, message_id, error)
        raise
    with svc.db.session() as session:
        message = session.get(SmsMessage, message_id)
        message.message_sid = sent.sid
        message.state = MESSAGE_STATUS.get(sent.status or "", SmsState.ACCEPTED)
        message.last_error = None
        _audit(session, message, "sms-accepted", to=to)
        if message.state in SMS_FINAL:  # its delivery report went to nobody
            _audit(session, message, f"sms-{message.state}", error_code=None)
    return sent.sid


def _audit(session: Session, message: SmsMessage, event: str, **detail: object) -> None:
    """Texts about a complaint are part of its trail; the others are kept in their own rows only."""
    if message.complaint_id is not None:
        audit.append(session, event, {"topic": message.topic, "message_sid": message.message_sid, **detail},
                     message.complaint_id)


def _sent_by_a_lost_job(client: Client, to: str, body: str, known: set[str]) -> MessageInstance | None:
    """A worker that died inside messages.create may have sent it: ask Twilio before texting the customer twice.

    The text carries what only this notice says (a complaint's reference, a promise's date), so a message with it to
    this customer that none of the notice's rows knows is the one the dead job sent; no clock is compared (ours
    and Twilio's may disagree).
    """
    for message in client.messages.list(to=to, limit=20):
        if message.body == body and message.sid not in known:
            logger.warning("SMS %s to %s was sent by a job that died; adopting it", message.sid, to)
            return message
    return None


def _not_accepted(svc: Services, message_id: int, error: Exception) -> None:
    with svc.db.session() as session:
        message = session.get(SmsMessage, message_id)
        message.last_error = describe(error)
        if last_attempt():
            message.state = SmsState.FAILED
            _audit(session, message, "sms-not-sent", message_id=message_id, error=message.last_error)


def message_status(unit: Unit, svc: Services, form: Mapping[str, str], status_url: str) -> VoiceResponse:
    """Twilio's delivery report: delivered ends the notice; undelivered or failed sends it again, later."""
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
    _audit(session, message, f"sms-{state}", error_code=error)
    if state == SmsState.DELIVERED:
        return VoiceResponse()
    session.flush()
    notice = _notice(session, message)
    if not needs_message(notice):
        logger.error("%s %s: not delivered by SMS after %s messages", message.topic, message.subject_id,
                     len(notice))
        return VoiceResponse()
    again = compose(session, SmsTopic(message.topic), message.subject_id, message.to, message.body,
                    message.complaint_id)
    failures = sum(m.state in NOT_DELIVERED for m in notice)
    delay = RESEND_AFTER[min(failures, len(RESEND_AFTER)) - 1]
    again_id = again.id
    unit.after_commit.append(lambda: enqueue_send(svc, again_id, status_url, delay))
    return VoiceResponse()


def unsent(svc: Services) -> list[tuple[int, int]]:
    """(text, attempts made) for every text still pending: `enqueue_send` skips those whose job is alive."""
    with svc.db.reading() as connection:
        return [(row.id, row.attempts) for row in connection.execute(
            select(SmsMessage.id, SmsMessage.attempts).where(SmsMessage.state == SmsState.PENDING)
            .order_by(SmsMessage.id))]


FORGOTTEN_BODY = "(removed: the customer asked to be forgotten)"


def forget(session: Session, number: str, token: str) -> tuple[int, int]:
    """A customer asked to be forgotten: no text goes to them any more and `token` stands for their number.
    A complaint's texts keep their words (the reference, their proof); the others lose theirs.
    (texts renumbered, texts whose words were removed)."""
    texts = session.scalars(select(SmsMessage).where(SmsMessage.to == number)).all()
    redacted = 0
    for message in texts:
        message.to = token
        if message.state == SmsState.PENDING:
            message.state, message.last_error = SmsState.FAILED, "the customer asked to be forgotten"
        if message.complaint_id is None:
            message.body = FORGOTTEN_BODY
            redacted += 1
    return len(texts), redacted
