"""Recordings for Twilio to <Play>: served only to holders of an unexpired signed link (`directo.core.media_links`)."""

from __future__ import annotations

from pathlib import Path

import requests
from flask import Blueprint, Response, abort, send_file

from directo.core import media_links
from directo.core.models import Recording
from directo.core.states import RecordingState
from directo.core.urls import path
from recordings.fetch import UntrustedMediaUrl, twilio_media_url
from voice.webhooks import services

bp = Blueprint("media", __name__)


@bp.get(path("media.recording"))
def recording(recording_id: int, expires: int, token: str) -> Response:
    svc = services()
    if not media_links.valid(svc.config.secret_key, recording_id, expires, token):
        abort(404)
    with svc.db.session() as session:
        found = session.get(Recording, recording_id)
    if found is None:
        abort(404)
    if found.state == RecordingState.STORED and found.path and Path(found.path).exists():
        return send_file(found.path, conditional=True, max_age=0)
    # Not copied yet: relay Twilio's copy, fetched with the account's credentials (from Twilio's own host only).
    config = svc.config
    try:
        url = twilio_media_url(config, found.source_url)
    except UntrustedMediaUrl:
        abort(404)
    try:
        upstream = requests.get(url, auth=(config.twilio_account_sid, config.twilio_auth_token), timeout=10)
    except requests.RequestException:
        abort(502, "Twilio could not be reached for the recording")
    if upstream.status_code != 200:
        abort(502, f"Twilio answered {upstream.status_code} for the recording")
    return Response(upstream.content, mimetype="audio/wav")
