"""The /voice/callbacks blueprint: Twilio's webhooks for callback reasons and agent-first callback calls."""

from __future__ import annotations

from flask import Blueprint, Response, request

from directo.core.urls import path
from routing.callback_calls import CallbackCall
from voice.signature import twilio_signed
from voice.webhooks import handle, hook, never_a_500

bp = Blueprint("callbacks", __name__)
bp.register_error_handler(Exception, never_a_500)


def _callback_id() -> int:
    return request.args.get("callback", default=0, type=int)


def _step(name: str, key: str) -> Response:
    """Exactly once per (call, callback, event); the callback id rides in the URL Directo gave Twilio."""
    callback_id = _callback_id()
    return handle(f"callback:{callback_id}:{key}",
                  lambda unit: getattr(CallbackCall(hook(unit), callback_id), name)(request.form))


@bp.post(path("callbacks.reason"))
@twilio_signed
def reason() -> Response:
    return _step("reason", "reason")


@bp.post(path("callbacks.reason_status"))
@twilio_signed
def reason_status() -> Response:
    return _step("reason_status", f"reason-status:{request.form.get('RecordingStatus', '')}")


@bp.post(path("callbacks.agent_answered"))
@twilio_signed
def agent_answered() -> Response:
    return _step("agent_answered", "agent-answered")


@bp.post(path("callbacks.agent_status"))
@twilio_signed
def agent_status() -> Response:
    return _step("agent_status", f"agent-status:{request.form.get('CallStatus', '')}")


@bp.post(path("callbacks.customer_leg"))
@twilio_signed
def customer_leg() -> Response:
    return _step("customer_leg", f"customer-leg:{request.form.get('CallSid', '')}:{request.form.get('CallStatus')}")


@bp.post(path("callbacks.customer_complete"))
@twilio_signed
def customer_complete() -> Response:
    return _step("customer_complete", "customer-complete")
