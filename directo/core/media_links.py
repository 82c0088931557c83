"""Links Twilio can fetch our copy of a recording with (its own media may need credentials): unguessable, since
an HMAC of the recording id under SECRET_KEY, and checked without leaking timing."""

from __future__ import annotations

import hashlib
import hmac

from directo.core.urls import UrlFor


def token(secret: str, recording_id: int) -> str:
    return hmac.new(secret.encode(), f"recording:{recording_id}".encode(), hashlib.sha256).hexdigest()[:32]


def valid(secret: str, recording_id: int, offered: str) -> bool:
    return hmac.compare_digest(offered, token(secret, recording_id))


def playable_url(urls: UrlFor, secret: str, recording_id: int) -> str:
    """A link Twilio can <Play> without credentials, and nobody can guess."""
    return urls("media.recording", recording_id=recording_id, token=token(secret, recording_id))
