"""The customer memory on the web: the customer page (search by number or name, the whole history, the profile's
changes), corrections to a customer's profile, and promises made from the agent page. For agents and supervisors.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response as BaseResponse

from directo.core.models import Agent, Call, Customer
from directo.core.unit_of_work import work
from routing import customers, memory, promises
from routing.directory import normalise_number
from routing.errors import Refused
from voice import agent_context
from voice.agent_page import services
from voice.agent_text import TEXT as AGENT_TEXT
from voice.agent_text import choose_language
from voice.auth import current_identity, is_supervisor, log_out
from voice.customer_text import TEXT
from voice.webhooks import external_url

bp = Blueprint("customers", __name__, url_prefix="/customers", template_folder="templates")
HISTORY_PAGE = 50


@bp.before_request
def active_agents_only() -> None:
    """Agents and supervisors who may still log in; a session of a deactivated agent ends here."""
    if current_identity() is None:
        abort(401, "log in first")
    with services().db.session() as db:
        active = db.scalar(select(Agent.active).where(Agent.identity == current_identity()))
    if not active:
        log_out()
        abort(401, "log in again")


@bp.errorhandler(HTTPException)
def error(err: HTTPException) -> Any:
    """The agent page's script sent JSON and shows `error` as it is; a page's form gets the error page."""
    if request.is_json:
        return jsonify(error=err.description), err.code
    return err


@bp.app_template_global()
def memory_text(language: str) -> dict[str, str]:
    """The memory's words for a page in `language` (the agent page includes the memory's sections)."""
    return TEXT[choose_language(language)]


@bp.app_template_global()
def config_time_zone() -> str:
    """The center's time zone, in which pages show promised dates."""
    return services().config.time_zone


def _language() -> str:
    with services().db.session() as db:
        me = db.scalar(select(Agent).where(Agent.identity == current_identity()))
    first = me.languages[0] if me is not None and me.languages else None
    return choose_language(request.args.get("lang"), first, services().config.default_language)


def _render(template: str, **values: Any) -> str:
    language = _language()
    return render_template(template, t=AGENT_TEXT[language], m=TEXT[language], language=language,
                           supervisor=is_supervisor(), time_zone=services().config.hours.zone, **values)


def _customer(db: Any, customer_id: int) -> Customer:
    customer = db.get(Customer, customer_id)
    if customer is None:
        abort(404, f"no customer {customer_id}")
    return customer


@bp.get("/")
def search() -> str:
    asked = request.args.get("q", "")
    with services().db.session() as db:
        found = memory.search(db, asked, normalise_number(asked, services().config.default_region))
        rows = [memory.profile(db, customer) for customer in found]
    return _render("customers/search.html", asked=asked, rows=rows)


@bp.get("/<int:customer_id>")
def page(customer_id: int) -> str:
    before = request.args.get("before", type=int)
    me_id = _my_id()
    with services().db.session() as db:
        customer = _customer(db, customer_id)
        remembered = memory.remember(db, customer, limit=0)
        history = memory.contacts(db, customer.id, limit=HISTORY_PAGE + 1, before=before)
        _playable(db, history, me_id)
        changes = memory.changes(db, customer.id)
    more = len(history) > HISTORY_PAGE
    history = history[:HISTORY_PAGE]
    return _render("customers/customer.html", c=remembered, history=history, changes=changes,
                   older=history[-1]["call_id"] if more else None)


@bp.post("/<int:customer_id>")
def edit(customer_id: int) -> BaseResponse:
    """The customer page's form: corrections, then back to the page."""
    fields = {name: request.form.get(name, "") for name in customers.FIELDS if name in request.form}
    try:
        _change(customer_id, fields, request.form.get("revision", type=int))
    except Refused as refused:
        abort(refused.status, str(refused))
    flash(TEXT[_language()]["profile_saved"])
    return redirect(url_for("customers.page", customer_id=customer_id))


@bp.post("/<int:customer_id>/profile")
def profile(customer_id: int) -> dict[str, Any]:
    """The agent page's corrections (JSON), on the revision the agent saw."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, "send a JSON object with the fields to change and the revision you saw")
    fields = {name: data[name] for name in customers.FIELDS if name in data}
    revision = data.get("revision")
    if revision is not None and not isinstance(revision, int):
        abort(400, "revision must be a whole number")
    try:
        _change(customer_id, fields, revision)
    except Refused as refused:
        abort(refused.status, str(refused))
    with services().db.session() as db:
        return memory.jsonable(memory.profile(db, _customer(db, customer_id)))


def _change(customer_id: int, fields: dict[str, Any], revision: int | None) -> None:
    with work(services().db) as unit:
        customers.change(unit.session, customer_id, fields, current_identity() or "", unit.now, seen=revision)


@bp.post("/promises")
def promise() -> tuple[Any, int]:
    """The agent promises, on their call, to call the customer at a date and time about something."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        abort(400, "send JSON {\"call_sid\": ..., \"at\": \"2026-03-12T10:00\", \"about\": ...}")
    call_sid, at, about = (str(data.get(key) or "").strip() for key in ("call_sid", "at", "about"))
    if not call_sid or not at:
        abort(400, "call_sid and at (a date and time) are needed")
    try:
        made = promises.promise(services(), call_sid, at, about, current_identity() or "",
                                status_url=external_url("complaints.twilio.sms_status"))
    except Refused as refused:
        abort(refused.status, str(refused))
    body = {"callback_id": made.callback_id, "due_at": made.due_at.isoformat(), "words": made.words,
            "created": made.created}
    return jsonify(body), 201 if made.created else 200


@bp.post("/promises/<int:callback_id>/done")
def promise_done(callback_id: int) -> dict[str, Any]:
    """What was promised was done on this call: the promise closes as kept, nobody is rung for it."""
    call_sid = str((request.get_json(silent=True) or {}).get("call_sid") or "")
    me = _my_id()
    with services().db.session() as db:
        call = db.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is None or me is None or not agent_context.reserved_to(db, call, me, current_identity() or ""):
            abort(403, "mark a promise done on your own call with that customer")
    try:
        promises.fulfil(services(), callback_id, call_sid, current_identity() or "")
    except Refused as refused:
        abort(refused.status, str(refused))
    return {"callback_id": callback_id, "done": True}


def _my_id() -> int | None:
    with services().db.session() as db:
        return db.scalar(select(Agent.id).where(Agent.identity == current_identity()))


def _playable(db: Any, contacts: list[dict[str, Any]], agent_id: int | None) -> None:
    """A recorded reason gets a player where this agent may hear it (supervisors always)."""
    agent_context.add_players(db, contacts, None if is_supervisor() else agent_id)
