"""Page input that no page could ever use, refused with a plain 400 before any view runs: a NUL character (which
PostgreSQL refuses in text, so it would surface as a 500), an id beyond the database's integers, and a JSON body
that is not an object. Twilio's webhooks are left alone here: nothing of theirs is read before the signature is
checked, and their fields are then cleaned instead (`voice.twilio_form`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Flask, abort, request

from directo.core.urls import TWILIO_ROUTES

# Every id column is an INTEGER: PostgreSQL's is 32 bits, and SQLite's Python driver refuses beyond 64.
MAX_ID = 2**31 - 1
# Pages take forms and small JSON bodies (notes are the largest, 10,000 characters): a little over a webhook.
PAGE_MAX_BYTES = 128 * 1024
_TWILIO_ENDPOINTS = frozenset(rule.endpoint for rule in TWILIO_ROUTES.iter_rules())


def init_app(app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = PAGE_MAX_BYTES
    app.url_value_preprocessor(_bounded_path)
    app.before_request(_refuse_unusable_input)


def _bounded_path(endpoint: str | None, values: dict[str, Any] | None) -> None:
    for name, value in (values or {}).items():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            abort(400, f"{name} {value} is not an id: ids go up to {MAX_ID}")
        if isinstance(value, str) and "\x00" in value:
            abort(400, f"{name} must not contain NUL characters")


def _refuse_unusable_input() -> None:
    if request.endpoint in _TWILIO_ENDPOINTS:
        return
    try:
        body = request.get_json(silent=True) if request.is_json else None
    except RecursionError:
        abort(400, "the JSON body is nested too deeply")
    if request.is_json and request.get_data() and not isinstance(body, dict):
        abort(400, "send a JSON object")
    texts = [*_strings(request.args), *_strings(request.form), *_json_strings(body)]
    if any("\x00" in text for text in texts):
        abort(400, "the request contains NUL characters, which no field may hold")


def _strings(fields: Any) -> Iterator[str]:
    for name, value in fields.items(multi=True):
        yield name
        yield value


def _json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)
