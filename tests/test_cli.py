"""The `directo` command, run as a user would, against the same configuration as the server."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from test_incoming import complete_call

from directo.cli import main


@pytest.fixture
def directo(config, app):
    env = {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url,
           "DIRECTO_DATA_DIR": config.data_dir, "TWILIO_AUTH_TOKEN": config.twilio_auth_token}
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args), env=env)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run


def test_agent_add_status_list(directo) -> None:
    out = directo("agent", "add", "ana", "--name", "Ana García", "--language", "es", "--language", "en").output
    assert "added ana" in out and "client:ana" in out
    directo("agent", "add", "tom", "--name", "Tom Jones", "--language", "en", "--phone", "+44 7700 900123")
    directo("agent", "status", "ana", "available")
    rows = {r["identity"]: r for r in json.loads(directo("agent", "list", "--json").output)}
    assert rows["ana"]["status"] == "available" and rows["ana"]["languages"] == ["es", "en"]
    assert rows["ana"]["idle_since"] is not None
    assert rows["tom"] == rows["tom"] | {"status": "offline", "phone": "+447700900123", "call": None}
    table = directo("agent", "list").output
    assert table.splitlines()[0].split() == ["IDENTITY", "NAME", "LANGUAGES", "STATUS", "CALL", "IDLE", "SINCE"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("agent", "add", "bad id", "--name", "X"), "identity"),
        (("agent", "add", "x", "--name", "X", "--language", "fr"), "language fr not served"),
        (("agent", "add", "x", "--name", "X", "--phone", "12"), "not a valid number"),
        (("agent", "add", "x", "--name", " "), "give the agent's name"),
        (("agent", "add", "x", "--name", "N" * 201), "up to 200 characters"),
        (("agent", "status", "ghost", "available"), "no active agent"),
    ],
)
def test_bad_requests_get_clear_errors(directo, args, message) -> None:
    result = directo(*args, ok=False)
    assert result.exit_code != 0 and message in result.output


def test_duplicate_agent_is_refused(directo) -> None:
    directo("agent", "add", "ana", "--name", "Ana")
    assert "already exists" in directo("agent", "add", "ana", "--name", "Ana", ok=False).output


def test_status_change_refused_while_on_a_call(directo, twilio) -> None:
    directo("agent", "add", "ana", "--name", "Ana")
    directo("agent", "status", "ana", "available")
    twilio.incoming("CA1")
    assert "is on call CA1" in directo("agent", "status", "ana", "away", ok=False).output


def test_calls_list_shows_the_call_log(directo, twilio) -> None:
    directo("agent", "add", "ana", "--name", "Ana")
    directo("agent", "status", "ana", "available")
    answer = twilio.incoming("CA1")
    complete_call(twilio, answer, "CA1", "ana")
    twilio.incoming("CA2", from_="anonymous")
    records = json.loads(directo("calls", "list", "--json").output)
    assert [r["call_sid"] for r in records] == ["CA2", "CA1"]
    first = records[1]
    assert first["caller"] == "+34600111222" and first["agent"] == "ana" and first["outcome"] == "answered"
    assert first["answered"] and first["ended"] and first["wait_seconds"] is not None
    assert records[0]["caller"] is None and records[0]["outcome"] == "no-agent"
    table = directo("calls", "list").output
    assert "CA1" in table and "withheld" in table
