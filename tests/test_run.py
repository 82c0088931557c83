"""`directo run` as a laptop user runs it: private Redis, SQLite file, gunicorn and a worker, one command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from twilio.request_validator import RequestValidator

from directo.core.config import Config
from directo.core.embedded_redis import EmbeddedRedis
from directo.core.services import Services
from routing import agents as admin

TOKEN = "run-test-token"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "PUBLIC_BASE_URL")}
    env.update(DIRECTO_DATA_DIR=str(tmp_path), TWILIO_AUTH_TOKEN=TOKEN)
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen([sys.executable, "-m", "directo.cli", "run", "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(base + "/health", timeout=1).ok:
                break
        except requests.RequestException:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "directo run did not come up"
        time.sleep(0.2)
    try:
        yield base, env
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        log.close()
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
    base, env = running
    private = EmbeddedRedis(Path(env["DIRECTO_DATA_DIR"]) / "redis")
    svc = Services.build(Config.from_env(env))
    try:
        admin.add_agent(svc, "ana", "Ana", ["es"])
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
