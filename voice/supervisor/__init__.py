"""The supervisor console: what happened (call log, complaints), who still waits (callbacks), who is on now (board)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from directo.core.models import Agent, Call
from directo.core.services import Services
from routing import agents as agent_admin
from routing.callback_report import callback_report
from routing.directory import normalise_number
from voice.auth import current_identity, is_supervisor, log_out
from voice.streams import BOARD_EVENTS
from voice.supervisor import actions, board, call_log, charts, complaints_register
from voice.supervisor.call_log import FilterError, Filters

bp = Blueprint("supervisor", __name__, url_prefix="/supervisor",
               static_folder="../static/supervisor", static_url_path="/static")
# A change's reason is kept in the callback's close reason after "cancelled by <identity>: ", which holds 200.
MAX_REASON = 120


def services() -> Services:
    return current_app.extensions["directo"]


@bp.before_request
def supervisors_only() -> BaseResponse | None:
    """Every view here, static files included, is for logged-in, still-active supervisors only."""
    if current_identity() is None:
        return redirect(url_for("agent.login"))
    if not is_supervisor():
        abort(403, "supervisors only")
    with services().db.session() as db:
        me = db.scalar(select(Agent).where(Agent.identity == current_identity()))
    if me is None or not me.active or me.role != "supervisor":
        log_out()
        abort(401, "log in again")
    return None


def _filters() -> Filters:
    args = request.args.to_dict()
    caller = (args.get("caller") or "").strip()
    if caller:
        # A supervisor types the number as the caller gave it; the log stores it as E.164.
        args["caller"] = normalise_number(caller, services().config.default_region) or caller
    try:
        return Filters.parse(args)
    except FilterError as bad:
        abort(400, str(bad))


def _checked(fetch: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a register query; a filter or cursor it cannot use is the client's mistake (400), said plainly."""
    try:
        return fetch(*args, **kwargs)
    except FilterError as bad:
        abort(400, str(bad))


@bp.get("/")
def index() -> str:
    svc = services()
    return render_template("supervisor/board.html", snapshot=board.snapshot(svc),
                           charts=charts.today(svc), section="board", events=request.script_root + BOARD_EVENTS)


@bp.get("/board.json")
def board_json() -> dict[str, Any]:
    return board.snapshot(services())


@bp.get("/calls")
def calls() -> str:
    filters = _filters()
    with services().db.session() as db:
        rows, cursor = _checked(call_log.page, db, filters, request.args.get("after") or None)
        agents = db.scalars(select(Agent.identity).order_by(Agent.identity)).all()
    return render_template("supervisor/calls.html", rows=rows, next_cursor=cursor, filters=filters,
                           agents=agents, outcomes=call_log.OUTCOMES, section="calls",
                           first_page=not request.args.get("after"))


@bp.get("/calls.csv")
def calls_csv() -> Response:
    filters = _filters()
    with services().db.session() as db:
        _checked(call_log.page, db, filters, size=1)  # refuse bad filters before the 200 is sent
    return Response(stream_with_context(call_log.csv_stream(services().db, filters)), mimetype="text/csv",
                    headers={"Content-Disposition": "attachment; filename=calls.csv"})


@bp.get("/calls/<int:call_id>")
def call_detail(call_id: int) -> str:
    with services().db.session() as db:
        call = db.get(Call, call_id)
        if call is None:
            abort(404, f"no call {call_id}")
        detail = complaints_register.call_detail(db, call)
    return render_template("supervisor/call.html", section="calls", **detail)


@bp.get("/complaints")
def complaints() -> str:
    filters = _filters()
    with services().db.session() as db:
        rows, cursor = _checked(complaints_register.page, db, filters, request.args.get("after") or None)
        chain = complaints_register.chain_status(db)
        agents = db.scalars(select(Agent.identity).order_by(Agent.identity)).all()
    return render_template("supervisor/complaints.html", rows=rows, next_cursor=cursor, filters=filters,
                           chain=chain, agents=agents, section="complaints")


@bp.get("/complaints.csv")
def complaints_csv() -> Response:
    filters = _filters()
    with services().db.session() as db:
        _checked(complaints_register.page, db, filters, size=1)
    return Response(stream_with_context(complaints_register.csv_stream(services().db, filters)),
                    mimetype="text/csv", headers={"Content-Disposition": "attachment; filename=complaints.csv"})


@bp.get("/callbacks")
def callbacks() -> str:
    svc = services()
    everything = request.args.get("all") == "1"
    with svc.db.session() as db:
        agents = db.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.identity)).all()
    return render_template("supervisor/callbacks.html", rows=callback_report(svc, everything=everything),
                           recordings=actions.reason_recordings(svc), agents=agents, everything=everything,
                           section="callbacks", max_reason=MAX_REASON)


@bp.post("/callbacks/<int:callback_id>/reassign")
def reassign(callback_id: int) -> BaseResponse:
    return _act(lambda svc, reason: actions.reassign(svc, callback_id, request.form.get("agent", ""), reason,
                                                     current_identity() or ""), "callbacks")


@bp.post("/callbacks/<int:callback_id>/cancel")
def cancel(callback_id: int) -> BaseResponse:
    return _act(lambda svc, reason: actions.cancel(svc, callback_id, reason, current_identity() or ""),
                "callbacks")


@bp.get("/agents")
def agents() -> str:
    return render_template("supervisor/agents.html", agents=actions.agent_rows(services()), section="agents",
                           me=current_identity())


@bp.post("/agents")
def add_agent() -> BaseResponse:
    form = request.form
    return _act(lambda svc, _reason: actions.add_agent(
        svc, form.get("identity", "").strip(), form.get("name", "").strip(), form.get("languages", ""),
        form.get("phone", "").strip() or None, form.get("role", "agent"), form.get("password", "")), "agents",
        reason_required=False)


@bp.post("/agents/<identity>/password")
def reset_password(identity: str) -> BaseResponse:
    return _act(lambda svc, _reason: actions.reset_password(svc, identity, request.form.get("password", "")),
                "agents", reason_required=False)


@bp.post("/agents/<identity>/languages")
def set_languages(identity: str) -> BaseResponse:
    return _act(lambda svc, _reason: actions.set_languages(svc, identity, request.form.get("languages", "")),
                "agents", reason_required=False)


@bp.post("/agents/<identity>/active")
def set_active(identity: str) -> BaseResponse:
    active = request.form.get("active") == "1"
    if not active and identity == current_identity():
        abort(400, "you cannot deactivate yourself")
    return _act(lambda svc, _reason: actions.set_active(svc, identity, active), "agents", reason_required=False)


def _act(action: Any, back: str, *, reason_required: bool = True) -> BaseResponse:
    """Run one change; a refusal is a clear 4xx with the reason, success returns to the page with a note."""
    reason = request.form.get("reason", "").strip()
    if reason_required and not reason:
        abort(400, "give a reason: it is kept with the change")
    if len(reason) > MAX_REASON:
        abort(400, f"keep the reason to {MAX_REASON} characters")
    try:
        done = action(services(), reason)
    except actions.Conflict as refused:
        abort(409, str(refused))
    except (actions.Invalid, agent_admin.AgentError) as bad:
        abort(400, str(bad))
    flash(done)
    return redirect(url_for(f"supervisor.{back}"))
