"""Recordings for Twilio to <Play>: unguessable, signed links, since Twilio's own media may need credentials."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import requests
from flask import Blueprint, Response, abort, current_app, send_file

from directo.models import Recording
from voice.webhooks import external_url, services

bp = Blueprint("media", __name__, url_prefix="/media")


def _token(recording_id: int) -> str:
    key = current_app.config["DIRECTO"].secret_key.encode()
    return hmac.new(key, f"recording:{recording_id}".encode(), hashlib.sha256).hexdigest()[:32]


def playable_url(recording_id: int) -> str:
    """A link Twilio can fetch without credentials, and nobody can guess."""
    return external_url("media.recording", recording_id=recording_id, token=_token(recording_id))


@bp.get("/recordings/<int:recording_id>/<token>")
def recording(recording_id: int, token: str) -> Response:
    if not hmac.compare_digest(token, _token(recording_id)):
        abort(404)
    svc = services()
    with svc.db.session() as session:
        found = session.get(Recording, recording_id)
    if found is None:
        abort(404)
    if found.state == "stored" and found.path and Path(found.path).exists():
        return send_file(found.path, conditional=True)
    # Not copied yet: relay Twilio's copy, fetched with the account's credentials.
    config = svc.config
    upstream = requests.get(found.source_url + ".wav", auth=(config.twilio_account_sid, config.twilio_auth_token),
                            timeout=10)
    if upstream.status_code != 200:
        abort(502, f"Twilio answered {upstream.status_code} for the recording")
    return Response(upstream.content, mimetype="audio/wav")
