"""Security headers on every response, and no-store on everything that shows customers' data.

The Content-Security-Policy allows exactly what the pages load: their own scripts and styles (no inline code, no
eval), our own recordings, and what the Twilio Voice SDK needs: its signalling and event gateway
(`wss://voice-js.*.twilio.com`, `https://eventgw.twilio.com`), its ringtones (`https://sdk.twilio.com`) and the
call's audio (a `blob:` of the media stream).
"""

from __future__ import annotations

from flask import Flask, Response, request

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "media-src 'self' blob: https://sdk.twilio.com",
    "connect-src 'self' wss://*.twilio.com https://*.twilio.com",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    # Same-origin only: CSRF checks on HTTPS need the Referer, and no URL (a caller's number in a filter) leaves.
    "Referrer-Policy": "same-origin",
}
# Sent only over HTTPS, where the browser honours it: a year, then every visit is HTTPS.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"
# Blueprints whose pages and JSON show customers (callers, numbers, notes, recordings, exports).
PRIVATE_BLUEPRINTS = {"agent", "supervisor", "complaints"}
# What those blueprints serve that shows nobody, and may be cached.
CACHEABLE_ENDPOINTS = {"agent.static", "agent.sdk", "supervisor.static"}


def add_security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
    if request.blueprint in PRIVATE_BLUEPRINTS and request.endpoint not in CACHEABLE_ENDPOINTS:
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.after_request(add_security_headers)
