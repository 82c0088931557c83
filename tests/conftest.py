"""Fixtures on real services: Redis (the configured one on a dedicated db, or an embedded server), SQLite
always and PostgreSQL when DATABASE_URL points at one, and webhooks signed the way Twilio signs them."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest
import requests
import uvicorn
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import settings
from rq import Worker
from sqlalchemy import create_engine, text
from twilio.request_validator import RequestValidator

from directo.core.config import Config
from directo.core.db import Database
from directo.core.embedded_redis import EmbeddedRedis
from directo.core.models import Base
from directo.core.services import SENTINEL_SCHEME, parse_redis_url, redis_client
from voice import create_app
from voice.web import WebApp

# Fuzzing (hypothesis): a fixed, repeatable set of cases in CI; `--hypothesis-profile=long` for a long local run.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, max_examples=40,
                          print_blob=True)
settings.register_profile("long", deadline=None, max_examples=2000)
settings.load_profile("ci")

AUTH_TOKEN = "test-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "a" * 32
# The tests flush this Redis database: never the one a developer's REDIS_URL uses for real work.
TEST_REDIS_DB = 13


def _with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return urlunsplit(parts._replace(query=urlencode({"db": db})))
    if parts.scheme == SENTINEL_SCHEME:  # /MASTER_NAME/DB
        return urlunsplit(parts._replace(path=f"/{parse_redis_url(url).master}/{db}"))
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield _with_db(configured, TEST_REDIS_DB)
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    yield server.start()
    server.stop()


def _database_params() -> list:
    params = [pytest.param("sqlite", id="sqlite")]
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres", "postgresql")):
        params.append(pytest.param(url, id="postgresql"))
    return params


_migrated: dict[str, Database] = {}


@pytest.fixture(scope="session", params=_database_params())
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'directo.db'}"
    return request.param


def make_config(database_url: str, redis_url: str, data_dir: Path) -> Config:
    return Config.from_env(
        env={},
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        redis_url=redis_url,
        database_url=database_url,
        data_dir=str(data_dir),
        recordings_dir=str(data_dir / "recordings"),
        secret_key="test-secret",
        default_language="es",
        wrapup_seconds=30,
    )


@pytest.fixture
def config(database_url: str, redis_url: str, tmp_path: Path) -> Config:
    return make_config(database_url, redis_url, tmp_path)


def clean_all(database_url: str, redis_url: str) -> None:
    db = _migrated.get(database_url)
    if db is None:
        db = _migrated[database_url] = Database(Config(database_url=database_url).database_url_sqlalchemy)
        db.migrate()
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as connection:
        if db.engine.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            connection.execute(text("PRAGMA defer_foreign_keys=ON"))  # calls and callbacks refer to each other
            for table in tables:
                connection.execute(text(f"DELETE FROM {table}"))
    redis_client(redis_url).flushdb()


def worker_env(config: Config, **extra: str) -> dict[str, str]:
    """The environment of a real `directo worker` process serving the app under test (`extra` overrides)."""
    return dict(
        os.environ,
        DATABASE_URL=config.database_url, REDIS_URL=config.redis_url, DIRECTO_DATA_DIR=config.data_dir,
        RECORDINGS_DIR=config.recordings_dir, TWILIO_ACCOUNT_SID=config.twilio_account_sid,
        TWILIO_AUTH_TOKEN=config.twilio_auth_token, TWILIO_API_BASE_URL=config.twilio_api_base_url,
        TWILIO_CALLER_ID=config.twilio_caller_id, WRAPUP_SECONDS=str(config.wrapup_seconds),
        DEFAULT_LANGUAGE=config.default_language, PUBLIC_BASE_URL=config.public_base_url,
    ) | extra


def run_together(prepare: str, act: str, *args: str, processes: int = 4) -> list[str]:
    """Python processes that run `prepare` (imports), then `act` at the same instant, as processes booting
    together do; each sees `args` as sys.argv[1:]. Their outputs, after asserting every one succeeded."""
    script = f"{prepare}\nimport sys as _s, time as _t\n_t.sleep(max(0.0, float(_s.argv.pop()) - _t.time()))\n{act}"
    at = str(time.time() + 4)  # time enough for every process to finish importing
    started = [subprocess.Popen([sys.executable, "-c", script, *args, at], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(processes)]
    outputs = [process.communicate(timeout=120)[0] for process in started]
    assert [process.returncode for process in started] == [0] * processes, outputs
    return outputs


def incoming_over_http(url: str, i: int, number_prefix: str = "+346001") -> str | None:
    """The i-th caller's signed /voice/incoming to a live server at `url`: the agent it rang, or None."""
    params = {"CallSid": f"CA{i:032d}", "From": f"{number_prefix}{i:05d}", "To": "+34910000000",
              "AccountSid": ACCOUNT_SID, "CallStatus": "ringing"}
    response = requests.post(url, data=params, timeout=30, headers={
        "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, params)})
    assert response.status_code == 200, response.text
    identity = ET.fromstring(response.text).find("Dial/Client/Identity")
    return None if identity is None else identity.text


def schema_versions(url: str) -> int:
    """Rows in alembic_version: one when the schema came up once."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT count(*) FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def wait_until_listening(process: subprocess.Popen, redis_url: str, timeout: float = 30) -> None:
    """Block until a started `directo worker` has registered with RQ, however busy the machine."""
    connection = redis_client(redis_url)
    deadline = time.monotonic() + timeout
    while not Worker.all(connection=connection):
        assert process.poll() is None and time.monotonic() < deadline, "the worker did not start"
        time.sleep(0.1)


@pytest.fixture
def clean(config: Config) -> None:
    """Empty tables and a flushed Redis database before the test."""
    clean_all(config.database_url, config.redis_url)


@pytest.fixture
def app(config: Config, clean: None) -> Iterator[Flask]:
    application = create_app(config)
    yield application
    application.extensions["directo"].close()


@pytest.fixture
def services(app: Flask):
    return app.extensions["directo"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@dataclass
class Answer:
    status: int
    body: str

    @property
    def xml(self) -> ET.Element:
        root = ET.fromstring(self.body)
        assert root.tag == "Response", self.body
        return root


class TwilioWebhooks:
    """Posts webhooks as Twilio does: form-encoded, signed over the exact URL and every parameter."""

    def __init__(self, client: FlaskClient, auth_token: str = AUTH_TOKEN, base: str = "http://localhost") -> None:
        self.client = client
        self.validator = RequestValidator(auth_token)
        self.base = base

    def post(self, path: str, params: dict[str, str], *, signature: str | None = None) -> Answer:
        url = path if path.startswith("http") else self.base + path
        signed = self.validator.compute_signature(url, params) if signature is None else signature
        headers = {"X-Twilio-Signature": signed} if signed else {}
        response = self.client.post(url, data=params, headers=headers)
        return Answer(response.status_code, response.get_data(as_text=True))

    def incoming(self, sid: str, from_: str | None = "+34600111222", **extra: str) -> Answer:
        params = {"CallSid": sid, "AccountSid": ACCOUNT_SID, "To": "+34910000000", "CallStatus": "ringing",
                  "Direction": "inbound", "ApiVersion": "2010-04-01", **extra}
        if from_ is not None:
            params["From"] = from_
        return self.post("/voice/incoming", params)

    def dial_complete(self, action_url: str, sid: str, status: str, duration: int = 0, **extra: str) -> Answer:
        params = {"CallSid": sid, "AccountSid": ACCOUNT_SID, "CallStatus": "in-progress",
                  "DialCallStatus": status, "DialCallSid": "CA" + "d" * 32, "DialCallDuration": str(duration),
                  **extra}
        return self.post(action_url, params)

    def agent_leg(self, url: str, parent: str, status: str, to: str) -> Answer:
        leg = "CA" + hashlib.sha1(parent.encode()).hexdigest()[:30]  # one agent leg per caller's call, as Twilio
        params = {"CallSid": leg, "ParentCallSid": parent, "CallStatus": status,
                  "To": to, "AccountSid": ACCOUNT_SID, "Direction": "outbound-dial"}
        return self.post(url, params)

    def status(self, sid: str, status: str, duration: int = 0) -> Answer:
        return self.post("/voice/status", {"CallSid": sid, "CallStatus": status, "CallDuration": str(duration),
                                            "AccountSid": ACCOUNT_SID})


@pytest.fixture
def twilio(client: FlaskClient) -> TwilioWebhooks:
    return TwilioWebhooks(client)


def listening_socket() -> socket.socket:
    """A port of our own, known before the app is built (its URL goes into the app's configuration)."""
    bound = socket.socket()
    bound.bind(("127.0.0.1", 0))
    return bound


class LiveServer:
    """The app on a real port as a web process serves it (voice.web under uvicorn: webhooks, pages and the live
    pages' streams), for tests that need real concurrent connections."""

    def __init__(self, app: Flask, bound: socket.socket | None = None) -> None:
        self.web = WebApp(app)
        self.socket = bound or listening_socket()
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.web, lifespan="on", log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the live server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.web.stop_streams()  # as the web worker does on a signal
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    with LiveServer(app) as server:
        yield server


CALLER_ID = "+34910000000"


@dataclass
class CallCenter:
    """The app on a real HTTP server, the Twilio stand-in playing the phone network, and a worker to run jobs."""

    app: Flask
    services: object
    url: str
    standin: object

    def run_jobs(self) -> int:
        """Run every queued job in this process (a real RQ worker in burst mode); returns how many ran."""
        from rq import SimpleWorker

        worker = SimpleWorker([self.services.queue], connection=self.services.redis)
        worker.work(burst=True, with_scheduler=True)  # retries that are due run too, as with `directo worker`
        return worker.successful_job_count + worker.failed_job_count

    def place_call(self, from_: str, **options: object):
        return self.standin.network.place_inbound_call(
            from_=from_, to=CALLER_ID, url=self.url + "/voice/incoming", status_callback=self.url + "/voice/status",
            **options)

    def until(self, predicate, timeout: float = 15.0, jobs: bool = True) -> None:
        """Wait for a condition on the record, running jobs meanwhile as a worker would."""
        import time

        from directo.core.models import Callback

        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                with self.services.db.session() as session:
                    callbacks = [(c.id, c.state, c.attempts, c.last_error, c.current_call_sid)
                                 for c in session.query(Callback).order_by(Callback.id)]
                calls = [(c.sid, c.to, c.status, c.errors) for c in self.standin.network.calls]
                raise TimeoutError(f"the call center did not get there in time; callbacks {callbacks}; "
                                   f"jobs queued {self.services.queue.count}; calls {calls}")
            if jobs:
                self.run_jobs()
            time.sleep(0.05)


@pytest.fixture
def callcenter(config: Config, clean: None) -> Iterator[CallCenter]:
    from dataclasses import replace

    from directo.core.jobs import use_services
    from standin import StandIn

    bound = listening_socket()
    url = f"http://127.0.0.1:{bound.getsockname()[1]}"
    with StandIn(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, time_scale=0.01, seed=7) as standin:
        app = create_app(replace(config, public_base_url=url, twilio_api_base_url=standin.base_url,
                                 twilio_caller_id=CALLER_ID))
        services = app.extensions["directo"]
        use_services(services)
        try:
            with LiveServer(app, bound):
                yield CallCenter(app, services, url, standin)
        finally:
            use_services(None)
            services.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many fuzz cases ran against each endpoint (tests/fuzzing.py), and the outage drills' figures
    (tests/drills.py)."""
    fuzzing, drills = sys.modules.get("fuzzing"), sys.modules.get("drills")
    if fuzzing is not None and fuzzing.CASES:
        terminalreporter.section("fuzz cases per endpoint")
        for (database, endpoint, kind), count in sorted(fuzzing.CASES.items()):
            terminalreporter.write_line(f"{database:<10} {endpoint:<48} {kind:<10} {count}")
        terminalreporter.write_line(f"total {sum(fuzzing.CASES.values())}")
    if drills is not None and drills.FIGURES:
        terminalreporter.section("outage drills")
        for name, figures in drills.FIGURES:
            terminalreporter.write_line(name)
            for key, value in figures.items():
                terminalreporter.write_line(f"  {key}: {value}")
