"""Media links for Twilio's <Play> expire and refuse any malformed token with a 404; the recording fetcher and the
media relay send the account's credentials only to the configured Twilio API host."""

from __future__ import annotations

import dataclasses
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from test_recording_audio import wav

from directo.core import media_links
from directo.core.jobs import use_services
from directo.core.models import Recording
from directo.core.urls import public_urls
from recordings.fetch import enqueue_fetch
from voice import create_app

SECRET = "test-secret"  # the conftest's SECRET_KEY


class MediaHost:
    """A real HTTP server standing for wherever a recording URL points: it notes every request it gets."""

    def __init__(self) -> None:
        self.requests: list[dict[str, str]] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                host.requests.append({"path": self.path, "authorization": self.headers.get("Authorization", "")})
                body = wav(1.0)
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def elsewhere():
    host = MediaHost()
    yield host
    host.close()


def _recording(services, source_url: str, state: str = "pending") -> int:
    with services.db.session() as session:
        recording = Recording(twilio_sid="RE" + "1" * 32, call_sid="CA01", kind="callback-reason",
                              source_url=source_url, state=state, attempts=0)
        session.add(recording)
        session.flush()
        return recording.id


def test_a_link_plays_until_it_expires_then_is_a_404(services, config, client) -> None:
    audio = Path(config.recordings_dir) / "reason.wav"
    audio.parent.mkdir(parents=True, exist_ok=True)
    audio.write_bytes(wav(1.0))
    recording_id = _recording(services, "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1", "stored")
    with services.db.session() as session:
        session.get(Recording, recording_id).path = str(audio)
    url = media_links.playable_url(public_urls("http://localhost"), SECRET, recording_id)
    expires = int(url.split("/")[-2])
    assert time.time() + media_links.LINK_SECONDS - 5 <= expires <= time.time() + media_links.LINK_SECONDS
    played = client.get(url)
    assert played.status_code == 200 and played.data == audio.read_bytes()
    stale = expires - media_links.LINK_SECONDS - 1
    old = f"/media/recordings/{recording_id}/{stale}/{media_links.token(SECRET, recording_id, stale)}"
    assert not media_links.valid(SECRET, recording_id, stale, old.rsplit("/", 1)[1])
    assert client.get(old).status_code == 404
    forged = f"/media/recordings/{recording_id}/{expires + 3600}/{url.rsplit('/', 1)[1]}"
    assert client.get(forged).status_code == 404, "the expiry is signed: pushing it out breaks the token"


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.text(min_size=1, max_size=80).filter(lambda t: "/" not in t and t not in (".", "..")))
def test_any_token_that_is_not_ours_is_a_404_never_a_500(client, token: str) -> None:
    """A 404, or a 400 where the path itself is not one a browser sends (a NUL): never a 500, never the file."""
    link = media_links.playable_url(public_urls("http://localhost"), SECRET, 1)
    answer = client.get(link.rsplit("/", 1)[0] + "/" + token)
    assert answer.status_code == (400 if "\x00" in token else 404), (token, answer.status_code)


def test_the_fetcher_sends_credentials_only_to_the_configured_twilio_host(services, elsewhere) -> None:
    recording_id = _recording(services, f"{elsewhere.url}/2010-04-01/Accounts/AC1/Recordings/RE1")
    use_services(services)
    try:
        enqueue_fetch(services, recording_id)
        SimpleWorker([services.queue], connection=services.redis).work(burst=True)
    finally:
        use_services(None)
    assert elsewhere.requests == [], "no request at all left for a host that is not Twilio's"
    with services.db.session() as session:
        recording = session.get(Recording, recording_id)
        assert recording.state == "failed" and "not on https://api.twilio.com" in recording.last_error
    job = Job.fetch(f"fetch-recording-{recording_id}", connection=services.redis)
    assert job.get_status() == "finished" and ScheduledJobRegistry(queue=services.queue).count == 0, "no retries"


def test_configured_as_the_twilio_api_host_it_gets_them(config, clean, elsewhere) -> None:
    app = create_app(dataclasses.replace(config, twilio_api_base_url=elsewhere.url))
    services = app.extensions["directo"]
    recording_id = _recording(services, f"{elsewhere.url}/2010-04-01/Accounts/AC1/Recordings/RE1")
    use_services(services)
    try:
        enqueue_fetch(services, recording_id)
        SimpleWorker([services.queue], connection=services.redis).work(burst=True)
        with services.db.session() as session:
            assert session.get(Recording, recording_id).state == "stored"
        assert elsewhere.requests[0]["path"].endswith("/RE1.wav")
        assert elsewhere.requests[0]["authorization"].startswith("Basic ")
    finally:
        use_services(None)
        services.close()


def test_the_media_relay_never_forwards_credentials_elsewhere(services, client, elsewhere) -> None:
    recording_id = _recording(services, f"{elsewhere.url}/2010-04-01/Accounts/AC1/Recordings/RE1")
    url = media_links.playable_url(public_urls("http://localhost"), SECRET, recording_id)
    assert client.get(url).status_code == 404
    assert elsewhere.requests == []


def test_the_media_relay_answers_502_when_twilio_cannot_be_reached(config, clean) -> None:
    unreachable = "http://127.0.0.1:9"  # the discard port: nothing listens there
    app = create_app(dataclasses.replace(config, twilio_api_base_url=unreachable))
    try:
        recording_id = _recording(app.extensions["directo"], f"{unreachable}/2010-04-01/Accounts/AC1/Recordings/RE1")
        url = media_links.playable_url(public_urls("http://localhost"), SECRET, recording_id)
        assert app.test_client().get(url).status_code == 502
    finally:
        app.extensions["directo"].close()
