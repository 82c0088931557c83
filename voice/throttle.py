"""Login throttling (Flask-Limiter on the app's own Redis, so every web process shares the counts).

Each failed login costs a password hash (~74 ms of CPU) on the cores that answer calls: failures are counted per
identity tried and per client address, and once either is over its limit the login answers 429 with Retry-After
before any hashing. Only failures count, so a whole office behind one address can log in at the start of a shift.
"""

from __future__ import annotations

import math
import time

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter

from directo.core.services import Services

# Identities are at most 64 characters: a longer one tried is cut, so a key never grows with the request.
MAX_KEY = 64

def client_address() -> str:
    """The peer's address; X-Forwarded-For counts only through ProxyFix, i.e. only with TRUSTED_PROXIES set."""
    return request.remote_addr or "unknown"


def identity_tried() -> str:
    return "identity:" + request.form.get("identity", "").strip().lower()[:MAX_KEY]


def failed_login(response: Response) -> bool:
    return response.status_code == 401


def per_identity() -> str:
    return current_app.config["DIRECTO"].login_failures_per_identity


def per_address() -> str:
    return current_app.config["DIRECTO"].login_failures_per_address


limiter = Limiter(key_func=client_address, strategy="moving-window", headers_enabled=True, key_prefix="directo-limit")


def init_app(app: Flask, services: Services) -> None:
    """Counts live in the Redis the app already uses (one URL, one connection pool, both set up in `Services`);
    with Redis down, each process counts in its own memory meanwhile instead of failing logins."""
    app.config.update(RATELIMIT_STORAGE_URI="redis://",
                      RATELIMIT_STORAGE_OPTIONS={"connection_pool": services.redis.connection_pool},
                      RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True, RATELIMIT_SWALLOW_ERRORS=True)
    app.after_request(_whole_seconds_up)  # registered first, so it runs after the limiter's own header
    limiter.init_app(app)


def _whole_seconds_up(response: Response) -> Response:
    """Flask-Limiter rounds Retry-After down, so a client that waits exactly that long is refused again."""
    breached = limiter.current_limit if response.status_code == 429 else None
    if breached is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(breached.reset_at - time.time())))
    return response
