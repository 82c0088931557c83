"""The HTTP edge: the Flask app, Twilio's webhooks (parsed, signature-checked, never a 500), the agent page and the
supervisor console. Views parse requests and render; what happens to calls is decided in routing/ and
recordings/, which never import this package."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from flask import Flask, g
from werkzeug.middleware.proxy_fix import ProxyFix

from directo.core.config import Config
from directo.core.services import Services
from voice import headers, input_guard, throttle
from voice.auth import SessionCookies, csrf


def create_app(config: Config | None = None) -> Flask:
    """Build the app from `config`, or from the environment when none is given."""
    config = config or Config.from_env()
    app = Flask(__name__)
    app.config["DIRECTO"] = config
    app.config["SECRET_KEY"] = config.secret_key
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      SESSION_COOKIE_SECURE=config.public_base_url.startswith("https://"),
                      PERMANENT_SESSION_LIFETIME=timedelta(hours=config.session_idle_hours),
                      WTF_CSRF_TIME_LIMIT=None)
    app.session_interface = SessionCookies()
    if config.trusted_proxies:
        # Only proxies the operator named may say who the client is and which URL it used (signatures are checked
        # against that URL when PUBLIC_BASE_URL is unset); anyone else's X-Forwarded-* headers are ignored.
        n = config.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    input_guard.init_app(app)
    services = Services.build(config)
    services.db.migrate()
    app.extensions["directo"] = services
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not config.public_base_url:
        logging.getLogger(__name__).warning(
            "PUBLIC_BASE_URL is not set: webhooks are checked against the Host each request names, which is safe "
            "only on a loopback address; set it to the URL Twilio uses (e.g. https://cc.example.com)")

    from voice.agent_complaints import bp as agent_complaints
    from voice.agent_page import bp as agent_page
    from voice.callback_webhooks import bp as callback_webhooks
    from voice.complaints import bp as complaints
    from voice.customers import bp as customers
    from voice.media import bp as media
    from voice.rescue_webhooks import bp as rescue_webhooks
    from voice.supervisor import bp as supervisor
    from voice.webhooks import bp as webhooks

    for blueprint in (webhooks, callback_webhooks, rescue_webhooks, complaints, agent_page, agent_complaints, media,
                      supervisor, customers):
        app.register_blueprint(blueprint)
    # Twilio cannot send a CSRF token; its webhooks are authenticated by X-Twilio-Signature instead.
    csrf.exempt(webhooks)
    csrf.exempt(callback_webhooks)
    csrf.exempt(rescue_webhooks)
    csrf.init_app(app)
    throttle.init_app(app, services)
    headers.init_app(app)

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _server_timing(response):  # type: ignore[no-untyped-def]
        # Server-Timing lets the benchmarks and browsers' dev tools see time spent in the app itself.
        if "started" in g:
            response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - g.started) * 1000:.2f}"
        return response

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
