"""The complaint acknowledgement a caller hears when the agent leg ends: their reference, slowly, twice,
on a recorded leg; and the SMS text that gives them the same reference to keep."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse

from directo.core.languages import say_language
from directo.core.models import Call, CallEvent, Complaint, utcnow
from directo.core.services import Services
from directo.core.states import RecordingStatus
from directo.core.twilio_client import twilio_client
from directo.core.unit_of_work import Unit
from recordings import audit
from recordings.references import spelled

logger = logging.getLogger(__name__)

# Starting the recording happens while Twilio waits for TwiML: it must not eat the 15 s webhook budget.
RECORDING_START_TIMEOUT = 4

TEXT: dict[str, dict[str, str]] = {
    "es": {
        "first": "Hemos registrado su reclamación. Apunte, por favor, su número de referencia: {spelled}.",
        "again": "Le repito su número de referencia: {spelled}.",
        "goodbye": "Le enviamos también la referencia por SMS. Gracias por su llamada. Adiós.",
        "sms": "Hemos registrado su reclamación con la referencia {reference}. Guárdela: la necesitará si nos "
               "vuelve a llamar por este asunto.",
    },
    "en": {
        "first": "We have registered your complaint. Please write down your reference number: {spelled}.",
        "again": "I repeat, your reference number is: {spelled}.",
        "goodbye": "We are also sending you the reference by text message. Thank you for calling. Goodbye.",
        "sms": "We have registered your complaint with reference {reference}. Please keep it: you will need it "
               "if you call us about this again.",
    },
}


def text(language: str, key: str, reference: str = "") -> str:
    return TEXT.get(language, TEXT["en"])[key].format(reference=reference, spelled=spelled(reference))


def sms_body(language: str, reference: str) -> str:
    return text(language, "sms", reference)


def acknowledgement_twiml(session: Session, call: Call, url_for: Callable[..., str]) -> VoiceResponse | None:
    """TwiML keeping the caller on the line to hear their complaint reference; None when the call has none.

    A <Redirect> rather than the words themselves: the acknowledgement webhook starts the recording first.
    """
    complaint_id = session.scalar(select(Complaint.id).where(Complaint.call_id == call.id))
    if complaint_id is None:
        return None
    response = VoiceResponse()
    response.redirect(url_for("complaints.twilio.acknowledge", complaint=complaint_id), method="POST")
    return response


def reference_twiml(language: str, reference: str, spoken_url: str) -> VoiceResponse:
    """The reference spelled out twice with pauses, then on to the webhook that notes it was heard."""
    voice = say_language(language)
    response = VoiceResponse()
    response.pause(length=1)
    response.say(text(language, "first", reference), language=voice)
    response.pause(length=2)
    response.say(text(language, "again", reference), language=voice)
    response.redirect(spoken_url, method="POST")
    return response


def goodbye_twiml(language: str) -> VoiceResponse:
    response = VoiceResponse()
    response.say(text(language, "goodbye"), language=say_language(language))
    response.hangup()
    return response


def acknowledge(unit: Unit, svc: Services, complaint_id: int, call_sid: str, url_for: Callable[..., str]) -> (
        VoiceResponse):
    """The caller is still on the line: start recording their leg (once committed), then speak the reference."""
    session = unit.session
    complaint = session.get(Complaint, complaint_id)
    if complaint is None or complaint.call.call_sid != call_sid:
        logger.warning("acknowledgement for unknown complaint %s on %s", complaint_id, call_sid)
        response = VoiceResponse()
        response.hangup()
        return response
    audit.append(session, "acknowledgement-started", {"reference": complaint.reference, "call_sid": call_sid},
                 complaint.id)
    session.add(CallEvent(call_id=complaint.call_id, at=utcnow(), kind="complaint-acknowledgement",
                          detail={"reference": complaint.reference}))
    callback = url_for("complaints.twilio.recording_status", complaint=complaint.id)
    unit.after_commit.append(lambda: start_recording(svc, complaint_id, call_sid, callback))
    return reference_twiml(complaint.language, complaint.reference,
                           url_for("complaints.twilio.spoken", complaint=complaint.id))


def start_recording(svc: Services, complaint_id: int, call_sid: str, callback_url: str) -> None:
    """Record the caller's leg through the REST API; failing that, the reference is still spoken and texted."""
    client = twilio_client(svc.config)
    client.http_client.timeout = RECORDING_START_TIMEOUT  # type: ignore[attr-defined]
    try:
        recording = client.calls(call_sid).recordings.create(
            recording_status_callback=callback_url,
            recording_status_callback_event=[RecordingStatus.COMPLETED, RecordingStatus.ABSENT],
            recording_channels="mono",
        )
    except Exception as error:
        logger.exception("complaint %s: could not start recording call %s", complaint_id, call_sid)
        with svc.db.session() as session:
            audit.append(session, "recording-not-started", {"call_sid": call_sid, "error": str(error)[:500]},
                         complaint_id)
        return
    logger.info("complaint %s: recording %s started on %s", complaint_id, recording.sid, call_sid)


def mark_spoken(unit: Unit, complaint_id: int, call_sid: str) -> VoiceResponse:
    """Twilio reached the end of both readings: the caller has heard the reference."""
    complaint = unit.session.get(Complaint, complaint_id)
    if complaint is None or complaint.call.call_sid != call_sid:
        response = VoiceResponse()
        response.hangup()
        return response
    if complaint.spoken_at is None:
        complaint.spoken_at = utcnow()
        audit.append(unit.session, "reference-spoken", {"reference": complaint.reference}, complaint.id)
    return goodbye_twiml(complaint.language)
