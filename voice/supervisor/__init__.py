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

from directo.core.models import Agent, Call, utcnow
from directo.core.services import Services
from directo.core.states import ComplaintState, Role
from recordings import register
from recordings.errors import ComplaintError
from routing import callback_admin, complaint_life, compliance, roster
from routing.callback_report import callback_report
from routing.complaint_life import Actor
from routing.directory import normalise_number
from routing.errors import Refused
from voice.auth import current_agent, current_identity, is_supervisor
from voice.streams import BOARD_EVENTS
from voice.supervisor import board, call_log, charts, complaints_register
from voice.supervisor.call_log import FilterError, Filters

bp = Blueprint("supervisor", __name__, url_prefix="/supervisor",
               static_folder="../static/supervisor", static_url_path="/static")
# A change's reason is kept in the callback's close reason after "cancelled by <identity>: ", which holds 200.
MAX_REASON = 120


def services() -> Services:
    return current_app.extensions["directo"]


@bp.before_request
def supervisors_only() -> BaseResponse | None:
    """Every view here, static files included, is for logged-in, still-active supervisors only (as the database
    says on this request, not as the cookie remembers)."""
    if current_agent() is None:
        return redirect(url_for("agent.login"))
    if not is_supervisor():
        abort(403, "supervisors only")
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
    with svc.db.session() as db:
        attention = register.attention(db)
    return render_template("supervisor/board.html", snapshot=board.snapshot(svc),
                           charts=charts.today(svc), section="board", attention=attention,
                           events=request.script_root + BOARD_EVENTS)


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


def _register_filters() -> complaints_register.RegisterFilters:
    return _checked(complaints_register.RegisterFilters.parse_register, request.args.to_dict(), _filters())


@bp.get("/complaints")
def complaints() -> str:
    filters = _register_filters()
    with services().db.session() as db:
        rows, cursor = _checked(complaints_register.page, db, filters, request.args.get("after") or None)
        chain = complaints_register.chain_status(db)
        agents = db.scalars(select(Agent.identity).order_by(Agent.identity)).all()
    return render_template("supervisor/complaints.html", rows=rows, next_cursor=cursor, filters=filters,
                           chain=chain, agents=agents, section="complaints", states=list(ComplaintState))


@bp.get("/complaints.csv")
def complaints_csv() -> Response:
    filters = _register_filters()
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
                           agents=agents, everything=everything, section="callbacks", max_reason=MAX_REASON)


@bp.post("/callbacks/<int:callback_id>/reassign")
def reassign(callback_id: int) -> BaseResponse:
    return _act(lambda svc, reason: callback_admin.reassign(svc, callback_id, request.form.get("agent", ""), reason,
                                                            current_identity() or ""), "callbacks")


@bp.post("/callbacks/<int:callback_id>/cancel")
def cancel(callback_id: int) -> BaseResponse:
    return _act(lambda svc, reason: callback_admin.cancel(svc, callback_id, reason, current_identity() or ""),
                "callbacks")


@bp.get("/agents")
def agents() -> str:
    return render_template("supervisor/agents.html", agents=roster.list_agents(services()), section="agents",
                           me=current_identity(), roles=list(Role))


@bp.post("/agents")
def add_agent() -> BaseResponse:
    form = request.form

    def add(svc: Services, _reason: str) -> str:
        identity = form.get("identity", "").strip()
        roster.add_agent(svc, identity, form.get("name", ""), form.get("languages", ""),
                         form.get("phone", "").strip() or None, form.get("role", ""), form.get("password", ""))
        return f"{identity} added"

    return _act(add, "agents", reason_required=False)


@bp.post("/agents/<identity>/password")
def reset_password(identity: str) -> BaseResponse:
    def reset(svc: Services, _reason: str) -> str:
        roster.set_password(svc, identity, request.form.get("password", ""))
        return f"password of {identity} reset"

    return _act(reset, "agents", reason_required=False)


@bp.post("/agents/<identity>/languages")
def set_languages(identity: str) -> BaseResponse:
    def change(svc: Services, _reason: str) -> str:
        spoken = roster.set_languages(svc, identity, request.form.get("languages", ""))
        return f"{identity} now speaks {', '.join(spoken)}"

    return _act(change, "agents", reason_required=False)


@bp.post("/agents/<identity>/active")
def set_active(identity: str) -> BaseResponse:
    active = request.form.get("active") == "1"
    if not active and identity == current_identity():
        abort(400, "you cannot deactivate yourself")
    def switch(svc: Services, _reason: str) -> str:
        roster.set_active(svc, identity, active)
        return f"{identity} {'reactivated' if active else 'deactivated'}"

    return _act(switch, "agents", reason_required=False)


@bp.post("/agents/<identity>/role")
def set_role(identity: str) -> BaseResponse:
    if identity == current_identity():
        abort(400, "you cannot change your own role")
    def change(svc: Services, _reason: str) -> str:
        role = roster.set_role(svc, identity, request.form.get("role", ""))
        return f"{identity} is now {role}"

    return _act(change, "agents", reason_required=False)


def _act(action: Any, back: str, *, reason_required: bool = True) -> BaseResponse:
    """Run one change; a refusal is a clear 4xx with the reason, success returns to the page with a note."""
    reason = request.form.get("reason", "").strip()
    if reason_required and not reason:
        abort(400, "give a reason: it is kept with the change")
    if len(reason) > MAX_REASON:
        abort(400, f"keep the reason to {MAX_REASON} characters")
    try:
        done = action(services(), reason)
    except Refused as refused:
        abort(refused.status, str(refused))
    flash(done)
    return redirect(url_for(f"supervisor.{back}"))


# --- one complaint, the complaints that need a supervisor, the compliance report ---------------------------------

@bp.get("/complaints/<reference>")
def complaint(reference: str) -> str:
    with services().db.session() as db:
        try:
            found = complaint_life.find(db, reference)
        except ComplaintError as missing:
            abort(missing.status, str(missing))
        row = register.row(db, found)
        steps = register.timeline(db, found)
        agents = db.scalars(select(Agent).where(Agent.active.is_(True)).order_by(Agent.identity)).all()
    return render_template("supervisor/complaint.html", row=row, steps=steps, agents=agents, section="complaints",
                           max_reason=complaint_life.MAX_REASON)


def _complaint_step(reference: str, take: Callable[[Services, Actor], dict[str, Any]]) -> BaseResponse:
    """One step on a complaint by the supervisor; a refusal is a clear 4xx (409 when someone acted first)."""
    try:
        row = take(services(), Actor(current_identity() or "", supervisor=True))
    except ComplaintError as refused:
        abort(refused.status, str(refused))
    flash(f"{row['reference']}: {row['state']}, owner {row['owner']}; next: {row['next_step']}")
    return redirect(url_for("supervisor.complaint", reference=row["reference"]))


@bp.post("/complaints/<reference>/assign")
def assign_complaint(reference: str) -> BaseResponse:
    return _complaint_step(reference, lambda svc, by: complaint_life.assign(
        svc, reference, request.form.get("agent", ""), request.form.get("reason", ""), by))


@bp.post("/complaints/<reference>/resolve")
def resolve_complaint(reference: str) -> BaseResponse:
    form = request.form
    return _complaint_step(reference, lambda svc, by: complaint_life.resolve(
        svc, reference, explanation=form.get("explanation", ""), remedy=form.get("remedy", ""),
        cause=form.get("cause", ""), by=by))


@bp.post("/complaints/<reference>/answer")
def answer_complaint(reference: str) -> BaseResponse:
    return _complaint_step(reference, lambda svc, by: complaint_life.record_answer(
        svc, reference, accepted=_yes("accepted"), note=request.form.get("note", ""), by=by))


@bp.post("/complaints/<reference>/verify")
def verify_complaint(reference: str) -> BaseResponse:
    return _complaint_step(reference, lambda svc, by: complaint_life.verify(
        svc, reference, satisfied=_yes("satisfied"), note=request.form.get("note", ""), by=by))


def _yes(field: str) -> bool:
    value = request.form.get(field)
    if value not in ("1", "0"):
        abort(400, f"{field} must be 1 (yes) or 0 (no)")
    return value == "1"


@bp.get("/complaints/attention.json")
def complaints_attention() -> dict[str, Any]:
    """Complaints whose customer is still not told with two days left or fewer, overdue first: the live board."""
    with services().db.session() as db:
        return {"complaints": register.attention(db)}


@bp.get("/report")
def report() -> str:
    month = request.args.get("month") or utcnow().strftime("%Y-%m")
    with services().db.session() as db:
        figures = _checked_month(lambda: compliance.report(db, month))
    return render_template("supervisor/report.html", figures=figures, section="report",
                           days=services().config.complaint_resolution_days)


@bp.get("/report.csv")
def report_csv() -> Response:
    month = request.args.get("month") or utcnow().strftime("%Y-%m")
    with services().db.session() as db:
        figures = _checked_month(lambda: compliance.report(db, month))
    return Response(compliance.as_csv(figures), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename=compliance-{figures['month']}.csv"})


def _checked_month(build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return build()
    except ValueError as bad:
        abort(400, str(bad))
