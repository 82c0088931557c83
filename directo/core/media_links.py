"""Links Twilio can fetch our copy of a recording with (its own media may need credentials): unguessable (an HMAC
under SECRET_KEY of the recording id and the link's expiry), short-lived, and checked without leaking timing."""

from __future__ import annotations

import hashlib
import hmac
import re
import time

from directo.core.urls import UrlFor

# Twilio fetches a <Play> URL as it reaches the verb, seconds after we answered; a link lasts a little longer.
LINK_SECONDS = 15 * 60
TOKEN_LENGTH = 32
_TOKEN = re.compile(f"[0-9a-f]{{{TOKEN_LENGTH}}}")


def token(secret: str, recording_id: int, expires: int) -> str:
    message = f"recording:{recording_id}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:TOKEN_LENGTH]


def valid(secret: str, recording_id: int, expires: int, offered: str, now: float | None = None) -> bool:
    """A token of the wrong shape (too long, not hex, not ASCII) is refused before any comparison, and so is an
    expired link, however well signed."""
    if not _TOKEN.fullmatch(offered) or expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(offered, token(secret, recording_id, expires))


def playable_url(urls: UrlFor, secret: str, recording_id: int) -> str:
    """A link Twilio can <Play> without credentials, that nobody can guess, for the next LINK_SECONDS."""
    expires = int(time.time()) + LINK_SECONDS
    return urls("media.recording", recording_id=recording_id, expires=expires,
                token=token(secret, recording_id, expires))
