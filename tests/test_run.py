"""`directo run` as a laptop user runs it: private Redis, SQLite file, gunicorn and a worker, one command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pytest
import requests
from twilio.request_validator import RequestValidator

from directo.core.config import Config
from directo.core.embedded_redis import EmbeddedRedis
from directo.core.services import Services
from directo.simulate.pages import Crowd, Page, session_cookie
from routing import agents as admin
from routing import roster

TOKEN = "run-test-token"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Running(NamedTuple):
    base: str
    env: dict[str, str]
    process: subprocess.Popen


@contextmanager
def directo_run(env: dict[str, str], log_path: Path, *options: str) -> Iterator[Running]:
    """`directo run` started as a user starts it (its output into `log_path`), once it answers; stopped with
    SIGTERM afterwards."""
    port = _free_port()
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "directo.cli", "run", "--port", str(port), *options],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if requests.get(base + "/health", timeout=1).ok:
                        break
                except requests.RequestException:
                    pass
                assert process.poll() is None and time.monotonic() < deadline, "directo run did not come up"
                time.sleep(0.2)
            yield Running(base, env, process)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "PUBLIC_BASE_URL")}
    env.update(DIRECTO_DATA_DIR=str(tmp_path), TWILIO_AUTH_TOKEN=TOKEN)
    with directo_run(env, tmp_path / "run.log") as run:
        yield run
    assert not EmbeddedRedis(tmp_path / "redis").running(), "the private Redis stops with the server"


def webhook(base: str, path: str, params: dict[str, str]) -> str:
    url = base + path
    signature = RequestValidator(TOKEN).compute_signature(url, params)
    response = requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert response.status_code == 200
    return response.text


def incoming(base: str, sid: str) -> str:
    return webhook(base, "/voice/incoming", {"CallSid": sid, "From": "+34600111222", "To": "+34910000000",
                                             "CallStatus": "ringing"})


def test_a_private_redis_that_dies_is_started_again_and_callers_reach_the_agents(running) -> None:
    base, env, _ = running
    private = EmbeddedRedis(Path(env["DIRECTO_DATA_DIR"]) / "redis")
    svc = Services.build(Config.from_env(env))
    try:
        roster.add_agent(svc, "ana", "Ana", ["es"])
        admin.set_status(svc, "ana", "available")
    finally:
        svc.close()
    assert "<Identity>ana</Identity>" in incoming(base, "CA1")
    webhook(base, "/voice/status", {"CallSid": "CA1", "CallStatus": "completed"})  # hung up while it rang

    os.kill(int(private.pidfile.read_text()), signal.SIGKILL)  # the private Redis crashes, taking presence along
    deadline = time.monotonic() + 15
    while not private.running():
        assert time.monotonic() < deadline, "directo run did not start its Redis again"
        time.sleep(0.2)
    answer = incoming(base, "CA2")
    assert "<Identity>ana</Identity>" in answer, "presence came back from the database: ana still takes calls"


def shown_away(board: Page) -> set[str]:
    return {row["identity"] for frame in board.named("agents") for row in json.loads(frame.data)
            if row.get("status") == "away"}


# gunicorn gthread, 2 processes x 64 threads: what `directo run` started before live pages moved off threads.
TODAYS_THREADS = 2 * 64


def test_webhooks_are_answered_at_once_with_more_pages_open_than_there_ever_were_threads(running) -> None:
    base, env, process = running
    agents = [f"a{i:03d}" for i in range(TODAYS_THREADS + 12)]
    svc = Services.build(Config.from_env(env))
    try:
        for identity in agents:
            roster.add_agent(svc, identity, identity.upper(), ["es"])
            admin.set_status(svc, identity, "available")
        roster.add_agent(svc, "sara", "Sara", ["es"], role="supervisor")
        secret = svc.config.secret_key
        with Crowd(base) as crowd:
            pages = crowd.open(Page(identity, False, session_cookie(secret, identity)) for identity in agents)
            boards = crowd.open(Page("sara", True, session_cookie(secret, "sara")) for _ in range(2))
            crowd.wait_open(pages + boards)
            assert [p.status for p in pages + boards] == [200] * (len(agents) + 2)

            started = time.monotonic()
            answer = incoming(base, "CA1")
            assert time.monotonic() - started < 1.0, "a webhook waits behind no page"
            chosen = answer.split("<Identity>")[1].split("</Identity>")[0]
            assert chosen in agents, "the caller reaches a person"
            for identity in agents:
                if identity != chosen:
                    admin.set_status(svc, identity, "away")
            crowd.wait(lambda: all(len(p.named("state")) >= 2 for p in pages), 15, "every page's next event")
            [mine] = [p for p in pages if p.person == chosen]
            crowd.wait(lambda: mine.named("message"), 5, "the screen pop")
            assert '"call_sid": "CA1"' in mine.named("message")[0].data
            others = set(agents) - {chosen}
            crowd.wait(lambda: all(shown_away(board) >= others for board in boards), 15, "each board's updates")

            # One agent opens the page in three more tabs: the bound (3) closes their first, which says why.
            first = pages[0]
            more = crowd.open(Page(first.person, False, session_cookie(secret, first.person)) for _ in range(3))
            crowd.wait_open(more)
            crowd.wait(lambda: first.ended, 5, "the first tab's end")
            assert first.frames[-1].event == "superseded"

            stopping = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
            assert time.monotonic() - stopping < 5, "directo run stops at once with pages open"
            still_open = [p for p in pages[1:] + boards + more if not (p.frames and p.frames[-1].event == "superseded")]
            assert all(p.frames[-1].event == "reconnect" for p in still_open), "each page was told to come back"
    finally:
        svc.close()
