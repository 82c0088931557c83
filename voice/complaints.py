"""Complaint endpoints: flagging by the agent, and Twilio's SMS and recording callbacks for complaints."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, abort, jsonify, request
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.exceptions import HTTPException

from directo.core.unit_of_work import Unit
from directo.core.urls import path
from recordings import acknowledgement, fetch, sms
from recordings.complaints import Flagged, flag
from recordings.errors import ComplaintError, NotFound
from routing import rescued
from voice.auth import csrf, current_identity, is_supervisor, login_required
from voice.signature import twilio_signed
from voice.webhooks import external_url, handle, never_a_500, services, urls

bp = Blueprint("complaints", __name__)
# Twilio's callbacks: signed instead of CSRF-protected, and answered with TwiML even when something fails.
twilio = Blueprint("twilio", __name__)
twilio.register_error_handler(Exception, never_a_500)


@bp.post("/complaints/flag")
@login_required
def flag_complaint() -> tuple[Response, int]:
    """The agent's complaint button (or a supervisor): JSON or form with call_sid and an optional summary."""
    data = request.get_json(silent=True) if request.is_json else request.form
    if not hasattr(data, "get"):
        abort(400, "expected a JSON object or a form")
    call_sid = str(data.get("call_sid") or "").strip()
    if not call_sid:
        abort(400, "call_sid is missing")

    def flag_it() -> Flagged:
        return flag(services(), call_sid, current_identity() or "", summary=str(data.get("summary") or ""),
                    supervisor=is_supervisor(), status_url=external_url("complaints.twilio.sms_status"))

    try:
        try:
            flagged = flag_it()
        except NotFound:  # a call answered while the database failed may not be on record yet: put it there
            if not rescued.record_one(services(), call_sid):
                raise
            flagged = flag_it()
    except ComplaintError as error:
        abort(error.status, str(error))
    body = {"reference": flagged.reference, "complaint_id": flagged.complaint_id, "call_sid": flagged.call_sid,
            "created": flagged.created}
    return jsonify(body), 201 if flagged.created else 200


@bp.errorhandler(HTTPException)
def json_error(error: HTTPException) -> tuple[Response, int]:
    """The agent page's script shows `error` as it is, so a refusal says why."""
    return jsonify(error=error.description), error.code or 500


def _complaint_id() -> int:
    complaint_id = request.args.get("complaint", type=int)
    if complaint_id is None:
        abort(400, "complaint is missing")
    return complaint_id


def _on_call(event: str, step: Callable[[Unit, int, str], VoiceResponse]) -> Response:
    """A step of the acknowledgement, once per complaint, on the caller's call."""
    complaint_id = _complaint_id()
    return handle(f"{event}:{complaint_id}", lambda unit: step(unit, complaint_id, request.form["CallSid"]))


@twilio.post(path("complaints.twilio.acknowledge"))
@csrf.exempt
@twilio_signed
def acknowledge() -> Response:
    return _on_call("complaint-ack", lambda unit, complaint_id, call_sid: acknowledgement.acknowledge(
        unit, services(), complaint_id, call_sid, urls()))


@twilio.post(path("complaints.twilio.spoken"))
@csrf.exempt
@twilio_signed
def spoken() -> Response:
    return _on_call("complaint-spoken", acknowledgement.mark_spoken)


@twilio.post(path("complaints.twilio.recording_status"))
@csrf.exempt
@twilio_signed
def recording_status() -> Response:
    complaint_id = _complaint_id()
    status = request.form.get("RecordingStatus", "")
    return handle(f"recording:{status}", lambda unit: fetch.recording_status(
        unit, services(), complaint_id, request.form), sid_field="RecordingSid")


@twilio.post(path("complaints.twilio.sms_status"))
@csrf.exempt
@twilio_signed
def sms_status() -> Response:
    status = request.form.get("MessageStatus", "")
    return handle(f"sms:{status}", lambda unit: sms.message_status(
        unit, services(), request.form, external_url("complaints.twilio.sms_status")), sid_field="MessageSid")


bp.register_blueprint(twilio)
