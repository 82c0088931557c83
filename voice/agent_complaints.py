"""The agent page's complaints: the ones the agent owns (due dates, next step), and each step they take on one:
resolve it, record whether the customer accepts the remedy, record the follow-up's verdict. JSON for the page's
script; the rules are routing/complaint_life.py's, the same as the console's and the CLI's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, abort, jsonify, request
from werkzeug.exceptions import HTTPException

from recordings import register
from recordings.errors import ComplaintError
from routing import complaint_life
from routing.complaint_life import Actor
from voice.agent_page import _me, services
from voice.auth import is_supervisor, login_required

bp = Blueprint("agent_complaints", __name__, url_prefix="/agent/complaints")


@bp.errorhandler(HTTPException)
def error(err: HTTPException) -> tuple[Response, int]:
    """The page's script shows `error` as it is, so a refusal says why."""
    return jsonify(error=err.description), err.code or 500


def _actor() -> Actor:
    return Actor(_me().identity, supervisor=is_supervisor())


@bp.get("/")
@login_required
def mine() -> dict[str, Any]:
    """The open complaints the agent owns, due first: what the side of the page lists."""
    me = _me()
    with services().db.session() as db:
        rows = register.listing(db, register.query(owner_id=me.id, open_only=True))
    return {"complaints": sorted(rows, key=lambda row: row["due_at"] or "")}


@bp.get("/<reference>")
@login_required
def one(reference: str) -> dict[str, Any]:
    actor = _actor()
    with services().db.session() as db:
        try:
            complaint = complaint_life.find(db, reference)
        except ComplaintError as refused:
            abort(refused.status, str(refused))
        if not complaint_life.may_see(db, complaint, actor):
            abort(403, f"{complaint.reference} is not yours, nor is its customer on a call with you")
        return register.row(db, complaint)


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "send a JSON object")
    return body


def _choice(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        abort(400, f"say {key}: true or false")
    return value


def _step(take: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """One step: the complaint as it stands after it, or a refusal with its reason (409 when someone acted first)."""
    body = _body()
    try:
        return take(body)
    except ComplaintError as refused:
        abort(refused.status, str(refused))


@bp.post("/<reference>/resolve")
@login_required
def resolve(reference: str) -> dict[str, Any]:
    return _step(lambda body: complaint_life.resolve(
        services(), reference, explanation=str(body.get("explanation") or ""), remedy=str(body.get("remedy") or ""),
        cause=str(body.get("cause") or ""), by=_actor()))


@bp.post("/<reference>/answer")
@login_required
def answer(reference: str) -> dict[str, Any]:
    return _step(lambda body: complaint_life.record_answer(
        services(), reference, accepted=_choice(body, "accepted"), note=str(body.get("note") or ""), by=_actor()))


@bp.post("/<reference>/verify")
@login_required
def verify(reference: str) -> dict[str, Any]:
    return _step(lambda body: complaint_life.verify(
        services(), reference, satisfied=_choice(body, "satisfied"), note=str(body.get("note") or ""), by=_actor()))
