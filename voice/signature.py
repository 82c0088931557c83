"""X-Twilio-Signature checking for every webhook: there is deliberately no switch to turn it off."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from flask import Request, abort, current_app, request
from twilio.request_validator import RequestValidator

logger = logging.getLogger(__name__)


def public_url(req: Request, public_base_url: str) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL when set, else the request URL as ProxyFix rebuilt it."""
    if public_base_url:
        return public_base_url + req.full_path.rstrip("?") if req.query_string else public_base_url + req.path
    return req.url


def twilio_signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """403 for any request whose signature does not cover exactly this URL and every parameter received."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        config = current_app.config["DIRECTO"]
        signature = request.headers.get("X-Twilio-Signature", "")
        url = public_url(request, config.public_base_url)
        validator = RequestValidator(config.twilio_auth_token)
        if not signature or not validator.validate(url, request.form, signature):
            logger.warning("rejected webhook %s: %s signature", url, "bad" if signature else "no")
            abort(403, "invalid or missing X-Twilio-Signature")
        return view(*args, **kwargs)

    return checked
