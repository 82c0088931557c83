"""The /voice blueprint: Twilio's webhooks for inbound calls. Views parse the request; `routing.inbound` decides."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

from flask import Blueprint, Response, abort, current_app, g, request
from redis import RedisError
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.exceptions import Forbidden, HTTPException

from directo.core.services import Services
from directo.core.states import FINAL_CALL_STATUSES, NOT_REACHED, AgentStatus
from directo.core.unit_of_work import Unit, run_once
from directo.core.urls import UrlFor, path, public_urls
from routing import rescued, twiml
from routing.directory import CallerContext, guess_language, normalise_number
from routing.inbound import InboundCall, plan_incoming, release_plan
from routing.presence import presence
from routing.webhook import Webhook
from voice.signature import twilio_signed, verified

logger = logging.getLogger(__name__)
bp = Blueprint("voice", __name__)


def services() -> Services:
    return current_app.extensions["directo"]


def urls() -> UrlFor:
    """Absolute URLs for Twilio: on PUBLIC_BASE_URL when configured, else on the URL this request came in on."""
    if "urls" not in g:
        g.urls = public_urls(current_app.config["DIRECTO"].public_base_url or request.url_root)
    return g.urls


def external_url(endpoint: str, **values: object) -> str:
    return urls()(endpoint, **values)


def xml(response: VoiceResponse | str) -> Response:
    return Response(str(response), mimetype="text/xml")


def handle(
    event: str,
    step: Callable[[Unit], VoiceResponse],
    sid_field: str = "CallSid",
    on_replay: Callable[[], object] | None = None,
) -> Response:
    """Run a step once per (call, event); a redelivered webhook gets the first answer again."""
    sid = request.form.get(sid_field)
    if not sid:
        abort(400, f"{sid_field} is missing")
    return xml(run_once(services().db, sid, event, step, on_replay))


def hook(unit: Unit) -> Webhook:
    """The event this request carries, for the domain to handle."""
    return Webhook(services(), unit, urls())


def _call(unit: Unit) -> InboundCall:
    return InboundCall(hook(unit))


@bp.post(path("voice.incoming"))
@twilio_signed
def incoming() -> Response:
    if not request.form.get("CallSid"):
        abort(400, "CallSid is missing")
    svc = services()
    plan = plan_incoming(svc, request.form)
    release = functools.partial(release_plan, svc, plan, request.form["CallSid"])
    try:
        return handle("incoming", lambda unit: _call(unit).incoming(request.form, plan), on_replay=release)
    except Exception:
        release()
        raise


@bp.post(path("voice.dial_complete"))
@twilio_signed
def dial_complete() -> Response:
    attempt = request.args.get("attempt", default=1, type=int)
    return handle(f"dial-complete:{attempt}", lambda unit: _call(unit).dial_complete(request.form, attempt))


@bp.post(path("voice.agent_leg"))
@twilio_signed
def agent_leg() -> Response:
    status = request.form.get("CallStatus", "")
    return handle(f"agent-leg:{status}", lambda unit: _call(unit).agent_leg(request.form))


@bp.post(path("voice.status"))
@twilio_signed
def status() -> Response:
    return handle(f"status:{request.form.get('CallStatus', '')}", lambda unit: _call(unit).status(request.form))


@bp.errorhandler(Exception)
def never_a_500(error: Exception) -> Response | HTTPException:
    """A caller must never hear Twilio's 'application error': a caller waiting for a person is put through
    to whoever can take them; anyone else hears a polite apology. Only for a request Twilio signed: a failure
    before the signature was checked is a stranger's, answered 403 with nothing said and nothing changed."""
    if isinstance(error, HTTPException) and (error.code or 500) < 500:
        return error
    if not verified():
        logger.warning("webhook %s failed before its signature was checked", request.path, exc_info=error)
        return Forbidden("invalid or missing X-Twilio-Signature")
    logger.exception("webhook %s failed", request.path)
    config = current_app.config["DIRECTO"]
    rescue = _last_resort() if _caller_waiting() else None
    return xml(rescue or twiml.say_and_hang_up(config.default_language, "trouble"))


def _caller_waiting() -> bool:
    """Whether the failed webhook was to put a caller, still on the line, through to someone."""
    if request.endpoint == "voice.incoming":
        return True
    return (request.endpoint in ("voice.dial_complete", "rescue.dial_complete")
            and request.form.get("DialCallStatus") in NOT_REACHED
            and request.form.get("CallStatus") not in FINAL_CALL_STATUSES)


def _last_resort() -> VoiceResponse | None:
    """The failure was not Redis (that has its own path), most likely the database: ring every agent free right
    now, as the live state knows them, and FALLBACK_NUMBER; with nobody to ring, promise a callback. Nothing is
    recorded now: the call is noted in Redis, and put on record (its callback queued) once the database answers
    again (`routing.rescued`). A promise Redis cannot note is not made: the caller hears the apology instead."""
    config = current_app.config["DIRECTO"]
    redis = services().redis
    try:
        free = [twiml.AgentTarget(identity, state.get("phone") or None)
                for identity, state in presence(services()).states().items()
                if state.get("status") == AgentStatus.AVAILABLE]
    except RedisError:
        free = []
    sid, from_raw = request.form.get("CallSid", ""), request.form.get("From", "")
    number = normalise_number(from_raw, config.default_region)
    caller = CallerContext(number=number, language=guess_language(number, config.default_language))
    if free or config.fallback_number:
        rescued.note(redis, sid, from_raw, [target.identity for target in free])
        return twiml.ring_everyone(
            free, caller, sid, fallback_number=config.fallback_number or None,
            action_url=external_url("rescue.dial_complete"), agent_status_url=external_url("rescue.agent_leg"),
            timeout=config.ring_timeout_seconds,
        )
    if number and rescued.note(redis, sid, from_raw, [], callback=True):
        return twiml.say_and_hang_up(caller.language, "callback_promise", minutes=config.callback_promise_minutes)
    return None
