"""X-Twilio-Signature checking for every webhook: there is deliberately no switch to turn it off.

Nothing is read, decided or said before the signature is checked: a body too large for a webhook is a 413, and
any other request that cannot be verified (unsigned, forged, a form that cannot even be parsed) is a 403. Only a
verified request is marked as such (`verified()`), so the never-a-500 rescue, which names the free agents and
their numbers, can never answer a stranger.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Request, abort, current_app, g, request
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import RequestEntityTooLarge

from voice.twilio_form import clean, clean_query

logger = logging.getLogger(__name__)

# Twilio's largest webhooks (a call with STIR/SHAKEN and SIP headers) are a few kilobytes.
WEBHOOK_MAX_BYTES = 64 * 1024


def public_url(req: Request, public_base_url: str) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL when set, else the request's root as ProxyFix rebuilt it; then the
    path and the query string exactly as requested (`request.url` would decode %2A or %C3%A9 in the query, and
    the signature would no longer match)."""
    base = public_base_url or req.root_url.rstrip("/")
    return base + req.full_path.rstrip("?") if req.query_string else base + req.path


def verified() -> bool:
    """Whether this request's signature was checked and held: only then may anything be said to it."""
    return bool(g.get("twilio_verified"))


def _signed_by_twilio(url: str, auth_token: str) -> bool:
    """The check itself, over the form as received; a body that cannot be read as a form is not verified."""
    signature = request.headers.get("X-Twilio-Signature", "")
    try:
        valid = bool(signature) and RequestValidator(auth_token).validate(url, request.form, signature)
    except RequestEntityTooLarge:
        logger.warning("rejected webhook %s: body over %d bytes or %d parts", url, WEBHOOK_MAX_BYTES,
                       request.max_form_parts)
        raise
    except Exception:  # a malformed body or signature: whatever it is, it is not Twilio's
        logger.warning("rejected webhook %s: unreadable request", url, exc_info=True)
        return False
    if not valid:
        logger.warning("rejected webhook %s: %s signature", url, "bad" if signature else "no")
    return valid


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """403 for any request whose signature does not cover exactly this URL and every parameter received; the view
    then reads the form cleaned and bounded (`voice.twilio_form`), never the raw one."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        config = current_app.config["DIRECTO"]
        request.max_content_length = WEBHOOK_MAX_BYTES
        if (request.content_length or 0) > WEBHOOK_MAX_BYTES:  # refused unread; a chunked body, as it is read
            abort(413, f"a webhook body is at most {WEBHOOK_MAX_BYTES} bytes")
        if not _signed_by_twilio(public_url(request, config.public_base_url), config.twilio_auth_token):
            abort(403, "invalid or missing X-Twilio-Signature")
        # werkzeug caches both in the request: the view reads these cleaned copies.
        request.form, request.args = clean(request.form), clean_query(request.args)  # type: ignore[misc]
        g.twilio_verified = True
        return view(*args, **kwargs)

    return checked
