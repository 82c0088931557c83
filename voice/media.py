"""Recordings for Twilio to <Play>: served only to holders of the signed link (see `directo.core.media_links`)."""

from __future__ import annotations

from pathlib import Path

import requests
from flask import Blueprint, Response, abort, send_file

from directo.core import media_links
from directo.core.models import Recording
from directo.core.states import RecordingState
from directo.core.urls import path
from voice.webhooks import services

bp = Blueprint("media", __name__)


@bp.get(path("media.recording"))
def recording(recording_id: int, token: str) -> Response:
    svc = services()
    if not media_links.valid(svc.config.secret_key, recording_id, token):
        abort(404)
    with svc.db.session() as session:
        found = session.get(Recording, recording_id)
    if found is None:
        abort(404)
    if found.state == RecordingState.STORED and found.path and Path(found.path).exists():
        return send_file(found.path, conditional=True)
    # Not copied yet: relay Twilio's copy, fetched with the account's credentials.
    config = svc.config
    upstream = requests.get(found.source_url + ".wav", auth=(config.twilio_account_sid, config.twilio_auth_token),
                            timeout=10)
    if upstream.status_code != 200:
        abort(502, f"Twilio answered {upstream.status_code} for the recording")
    return Response(upstream.content, mimetype="audio/wav")
