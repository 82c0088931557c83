"""A tiny real app the stand-in calls, and the numbers the tests use."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.serving import make_server

AUTH_TOKEN = "secret"
OUR_NUMBER = "+34910000000"
CUSTOMER = "+34600111222"

Handler = Callable[[dict[str, str]], "VoiceResponse | str | Response"]


@dataclass
class Received:
    """One request the app got, after its signature was checked."""

    path: str
    method: str
    form: dict[str, str]
    signature_ok: bool


class App:
    """A real Flask app on a free port: it checks X-Twilio-Signature (403 if wrong) and answers scripted TwiML.

    Behind a load balancer (`public_base`), signatures are checked over the public URL, as Directo does with
    PUBLIC_BASE_URL."""

    def __init__(self, auth_token: str, public_base: str | None = None) -> None:
        self.validator = RequestValidator(auth_token)
        self.public_base = public_base
        self.handlers: dict[str, Handler] = {}
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self.flask = Flask("standin-test-app")
        self.flask.add_url_rule("/<path:path>", "any", self._handle, methods=["GET", "POST"])
        self._server = make_server("127.0.0.1", 0, self.flask, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        serve = {"poll_interval": 0.05}
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs=serve, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return self.base_url + path

    def on(self, path: str, handler: Handler | VoiceResponse | str) -> None:
        """Answer requests to `path` with fixed TwiML or with handler(params)."""
        self.handlers[path] = handler if callable(handler) else (lambda _form: handler)

    def received(self, path: str) -> list[dict[str, str]]:
        with self._lock:
            return [r.form for r in self.requests if r.path == path]

    def _handle(self, path: str) -> Any:
        params = request.form.to_dict() if request.method == "POST" else {}
        form = request.values.to_dict()
        url = request.url if self.public_base is None else self.public_base + request.full_path.rstrip("?")
        signature_ok = self.validator.validate(url, params, request.headers.get("X-Twilio-Signature", ""))
        with self._lock:
            self.requests.append(Received("/" + path, request.method, form, signature_ok))
        if not signature_ok:
            return Response("bad signature", status=403)
        handler = self.handlers.get("/" + path)
        if handler is None:
            return Response(status=204)
        answer = handler(form)
        if isinstance(answer, Response):
            return answer
        return Response(str(answer), mimetype="text/xml")

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(5)
        self._server.server_close()
