"""The agent's softphone page: login, presence, screen pop, complaint button, wrap-up."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_limiter import RequestLimit
from sqlalchemy import select
from sqlalchemy.orm import Session
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from directo.core.models import Agent, Call, Callback, CallNote, Recording
from directo.core.services import Services
from directo.core.states import SETTABLE, RecordingState, Role
from routing import agents, roster
from routing.errors import Refused
from routing.presence import presence
from voice import agent_context, agent_events, throttle
from voice.agent_text import TEXT, choose_language
from voice.auth import current_agent, is_supervisor, log_in, log_out, login_required
from voice.streams import AGENT_EVENTS

bp = Blueprint("agent", __name__, url_prefix="/agent", template_folder="templates",
               static_folder="static/agent", static_url_path="/static")

TOKEN_TTL_SECONDS = 3600
MAX_NOTES = 10_000
LANGUAGE_KEY = "agent_language"
SDK_PATH = Path("node_modules/@twilio/voice-sdk/dist/twilio.min.js")
# The views that answer with HTML; every other view here is called by the page's script and answers JSON.
PAGES = {"agent.login", "agent.page", "agent.logout"}


def services() -> Services:
    return current_app.extensions["directo"]


@bp.errorhandler(HTTPException)
def error(err: HTTPException) -> Any:
    """The page's script shows `error` as it is, so a refusal says why (e.g. 'on call CA…')."""
    if request.endpoint in PAGES:
        return err
    return jsonify(error=err.description), err.code


def _language(agent: Agent | None = None) -> str:
    asked = request.args.get("lang")
    if asked in TEXT:
        session[LANGUAGE_KEY] = asked
    first = agent.languages[0] if agent is not None and agent.languages else None
    browser = request.accept_languages.best_match(list(TEXT))
    return choose_language(session.get(LANGUAGE_KEY), first, browser, services().config.default_language)


def _me() -> Agent:
    """The logged-in agent as the database has them now (see `voice.auth.current_agent`)."""
    agent = current_agent()
    if agent is None:
        abort(401, "log in again")
    return agent


def _too_many_logins(limit: RequestLimit) -> Response:
    """A 429 that says when to try again, in the page's language (the Retry-After header says it to machines)."""
    language = _language()
    minutes = max(1, math.ceil((limit.reset_at - time.time()) / 60))
    return Response(render_template("agent/login.html", t=TEXT[language], language=language, failed=False,
                                    wait_minutes=minutes, identity=request.form.get("identity", "")), 429)


@bp.route("/login", methods=["GET", "POST"])
@throttle.limiter.limit(throttle.per_address, key_func=throttle.client_address, methods=["POST"],
                        deduct_when=throttle.failed_login, on_breach=_too_many_logins)
@throttle.limiter.limit(throttle.per_identity, key_func=throttle.identity_tried, methods=["POST"],
                        deduct_when=throttle.failed_login, on_breach=_too_many_logins)
def login() -> Any:
    language = _language()
    if request.method == "GET":
        return render_template("agent/login.html", t=TEXT[language], language=language, failed=False)
    identity = request.form.get("identity", "").strip()
    agent = roster.check_password(services(), identity, request.form.get("password", ""))
    if agent is None:
        return render_template("agent/login.html", t=TEXT[language], language=language, failed=True,
                               identity=identity), 401
    chosen = session.get(LANGUAGE_KEY)  # a language picked on the login page outlives the fresh session
    log_in(agent)
    if chosen:
        session[LANGUAGE_KEY] = chosen
    return redirect(url_for("supervisor.index" if agent.role == Role.SUPERVISOR else "agent.page"))


@bp.post("/logout")
def logout() -> BaseResponse:
    log_out()
    return redirect(url_for("agent.login"))


@bp.get("/")
def page() -> Any:
    agent = current_agent()
    if agent is None:
        return redirect(url_for("agent.login"))
    language = _language(agent)
    return render_template("agent/page.html", t=TEXT[language], language=language, agent=agent,
                           other="en" if language == "es" else "es", events=request.script_root + AGENT_EVENTS)


@bp.get("/state")
@login_required
def state() -> dict[str, Any]:
    return agent_events.live_state(presence(services()), _me().identity)


@bp.post("/status")
@login_required
def status() -> Any:
    wanted = (request.get_json(silent=True) or {}).get("status") or request.form.get("status")
    if wanted not in SETTABLE:
        abort(400, f"status must be one of {', '.join(SETTABLE)}")
    identity = _me().identity
    try:
        agents.set_status(services(), identity, wanted)
    except Refused as refused:
        abort(409, str(refused))
    return agent_events.live_state(presence(services()), identity)


@bp.get("/token")
@login_required
def token() -> Any:
    """A short-lived Voice token for this agent's own identity only; the page renews it before it expires."""
    config = services().config
    missing = [name for name, value in (("TWILIO_API_KEY", config.twilio_api_key),
                                        ("TWILIO_API_SECRET", config.twilio_api_secret),
                                        ("TWILIO_TWIML_APP_SID", config.twilio_twiml_app_sid)) if not value]
    if missing:
        return jsonify(error=f"{', '.join(missing)} not configured"), 503
    identity = _me().identity
    access = AccessToken(config.twilio_account_sid, config.twilio_api_key, config.twilio_api_secret,
                         identity=identity, ttl=TOKEN_TTL_SECONDS)
    access.add_grant(VoiceGrant(outgoing_application_sid=config.twilio_twiml_app_sid, incoming_allow=True))
    return {"token": access.to_jwt(), "identity": identity, "ttl": TOKEN_TTL_SECONDS}


@bp.get("/calls/<call_sid>/context")
@login_required
def call_context(call_sid: str) -> dict[str, Any]:
    me = _me()
    with services().db.session() as db:
        call = _own_call(db, call_sid, me)
        return agent_context.call_context(db, call, None if is_supervisor() and call.agent_id != me.id else me.id)


@bp.get("/callbacks/<int:callback_id>/context")
@login_required
def callback_context(callback_id: int) -> dict[str, Any]:
    me = _me()
    with services().db.session() as db:
        callback = db.get(Callback, callback_id)
        if callback is None:
            abort(404, f"no callback {callback_id}")
        if not is_supervisor() and not agent_context.callback_for(db, callback, me.id):
            abort(403, "this callback is not yours")
        return agent_context.callback_context(db, callback, me.id)


@bp.post("/calls/<call_sid>/notes")
@login_required
def notes(call_sid: str) -> dict[str, Any]:
    text = (request.get_json(silent=True) or {}).get("notes")
    if not isinstance(text, str):
        abort(400, "send JSON {\"notes\": \"...\"}")
    if len(text) > MAX_NOTES:
        abort(400, f"notes are limited to {MAX_NOTES} characters")
    me = _me()
    with services().db.session() as db:
        call = _call(db, call_sid)
        if not agent_context.took(call, me.id):
            abort(403, "only the agent who took this call writes its notes")
        if text != call.notes:  # every version is kept, with who wrote it and when
            call.notes = text
            db.add(CallNote(call_id=call.id, agent_id=me.id, notes=text))
    return {"call_sid": call_sid, "notes": text}


@bp.get("/recordings/<int:recording_id>")
@login_required
def recording(recording_id: int) -> Response:
    """Range requests (206) let the browser's player seek without downloading the whole file."""
    me = _me()
    with services().db.session() as db:
        stored = db.get(Recording, recording_id)
        if stored is None:
            abort(404, f"no recording {recording_id}")
        if not is_supervisor() and not agent_context.may_hear(db, stored, me.id):
            abort(403, "this recording is not from one of your calls")
    if stored.state != RecordingState.STORED or not stored.path:
        abort(404, f"recording {recording_id} is not stored yet ({stored.state})")
    path = Path(stored.path)
    if not path.is_absolute():
        path = Path(services().config.recordings_dir) / path
    if not path.is_file():
        abort(404, f"recording {recording_id} is missing from storage")
    mimetype = {"mp3": "audio/mpeg", "wav": "audio/wav", "ogg": "audio/ogg"}.get(stored.format or "", None)
    return send_file(path, mimetype=mimetype, conditional=True, max_age=0)


@bp.get("/sdk/twilio.min.js")
def sdk() -> Response:
    """The Twilio Voice SDK as npm installed it: the file is never copied into the repository."""
    path = Path(current_app.root_path).parent / SDK_PATH
    if not path.is_file():
        abort(404, "Twilio Voice SDK not installed: run scripts/setup (npm ci)")
    return send_file(path, mimetype="text/javascript", max_age=3600)


def _call(db: Session, call_sid: str) -> Call:
    call = db.scalar(select(Call).where(Call.call_sid == call_sid))
    if call is None:
        abort(404, f"no call {call_sid}")
    return call


def _own_call(db: Session, call_sid: str, me: Agent) -> Call:
    """A call this agent was rung for (any attempt), or any call for a supervisor."""
    call = _call(db, call_sid)
    if not is_supervisor() and not agent_context.reserved_to(db, call, me.id, me.identity):
        abort(403, "this call is not yours")
    return call
