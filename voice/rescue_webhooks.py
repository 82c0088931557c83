"""Twilio's callbacks about a call the last resort rang everyone for while the database failed: each puts the call
on record first (the database has likely answered again by then), then carries on as for any call. An agent
answering makes them this call's agent at once; the <Dial> ending goes on as for any everyone-rings <Dial>:
connected, over, or a callback promised. Failing again, the caller is rescued again."""

from __future__ import annotations

from flask import Blueprint, Response, request

from directo.core.states import CallStatus
from directo.core.urls import path
from routing import rescued
from routing.inbound import FALLBACK_ATTEMPT, InboundCall
from voice.signature import twilio_signed
from voice.webhooks import handle, hook, never_a_500, services

bp = Blueprint("rescue", __name__)
bp.register_error_handler(Exception, never_a_500)


@bp.post(path("rescue.dial_complete"))
@twilio_signed
def dial_complete() -> Response:
    rescued.record_one(services(), request.form.get("CallSid", ""))
    return handle(f"dial-complete:{FALLBACK_ATTEMPT}",
                  lambda unit: InboundCall(hook(unit)).dial_complete(request.form, FALLBACK_ATTEMPT))


@bp.post(path("rescue.agent_leg"))
@twilio_signed
def agent_leg() -> Response:
    status = request.form.get("CallStatus", "")
    if status == CallStatus.IN_PROGRESS:
        rescued.answered(services(), request.form.get("To", ""), request.form.get("ParentCallSid", ""))
    if status not in (CallStatus.INITIATED, CallStatus.RINGING):  # answered or over: who took it is known now
        rescued.record_one(services(), request.form.get("ParentCallSid", ""))
    return handle(f"agent-leg:{status}", lambda unit: InboundCall(hook(unit)).agent_leg(request.form))
