"""Forwarded headers are believed only from proxies the operator named (TRUSTED_PROXIES), and `directo run` will
not listen beyond this machine without knowing its public URL."""

from __future__ import annotations

import dataclasses

import flask
import pytest
from click.testing import CliRunner
from conftest import ACCOUNT_SID, AUTH_TOKEN
from sqlalchemy import func, select
from test_incoming import add
from twilio.request_validator import RequestValidator

from directo.cli import main
from directo.cli.server import reachable_from_elsewhere
from directo.core.models import Call
from voice import create_app

PARAMS = {"CallSid": "CA1", "From": "+34600111222", "AccountSid": ACCOUNT_SID}


def _post_as_if_for(client, public_url: str):
    """A request Twilio signed for `public_url`, delivered here with forwarded headers naming that URL's host."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(public_url, PARAMS)
    return client.post("/voice/incoming", data=PARAMS, headers={
        "X-Twilio-Signature": signature, "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": public_url.split("/")[2], "X-Forwarded-For": "203.0.113.9"})


def test_without_trusted_proxies_a_request_signed_for_another_host_is_refused(services, client) -> None:
    """Replayed from another deployment (same Twilio account), it names that host in X-Forwarded-Host."""
    add(services, "ana")
    answer = _post_as_if_for(client, "https://other-directo.example.com/voice/incoming")
    assert answer.status_code == 403
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 0


def test_forwarded_headers_count_only_from_as_many_proxies_as_configured(config, clean) -> None:
    app = create_app(dataclasses.replace(config, trusted_proxies=1))
    app.add_url_rule("/whoami", "whoami", lambda: flask.request.remote_addr or "")
    try:
        add(app.extensions["directo"], "ana")
        client = app.test_client()
        assert _post_as_if_for(client, "https://cc.example.com/voice/incoming").status_code == 200
        seen = client.get("/whoami", headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9"})
        assert seen.get_data(as_text=True) == "203.0.113.9", "only the hop our proxy added is believed"
    finally:
        app.extensions["directo"].close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "cc.example.com"])
def test_run_refuses_a_public_bind_address_without_public_base_url(host, tmp_path) -> None:
    result = CliRunner().invoke(main, ["run", "--host", host], env={"DIRECTO_DATA_DIR": str(tmp_path),
                                                                    "PUBLIC_BASE_URL": ""})
    assert result.exit_code == 2, result.output
    assert "PUBLIC_BASE_URL" in result.output and "TRUSTED_PROXIES" in result.output
    assert not (tmp_path / "redis").exists(), "refused before starting anything"


def test_loopback_addresses_need_no_public_url() -> None:
    assert [reachable_from_elsewhere(h) for h in ("127.0.0.1", "::1", "localhost", "127.0.0.2")] == [False] * 4
    assert [reachable_from_elsewhere(h) for h in ("0.0.0.0", "::", "10.0.0.5", "example.com")] == [True] * 4
