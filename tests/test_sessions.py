"""Sessions of the agent page and the supervisor console: checked against the database on every request, ended
everywhere by logout, a new password, a new role or deactivation, expired after a working day unused, and Secure
whenever they travel over TLS. Every endpoint a person reaches with a cookie is tried, so none can be forgotten."""

from __future__ import annotations

import dataclasses
import re
import time

import pytest
from click.testing import CliRunner
from flask import Flask
from itsdangerous.timed import TimestampSigner
from sqlalchemy import select, text
from test_agent_page import PASSWORD, AgentPage, agent_with_password
from test_complaints import answered_call

from directo.cli import main
from directo.core.models import Complaint
from routing import agents as admin
from voice import create_app

ANA, SUE = "ana", "sue"
NEW_PASSWORD = "another horse battery"
# Views anyone may reach: the login itself, and the page's static files and the SDK (no customer data).
OPEN = {"agent.login", "agent.logout", "agent.static", "agent.sdk"}
PLACEHOLDERS = {"<call_sid>": "CA01", "<identity>": ANA, "<path:filename>": "supervisor.css"}


def personal_endpoints(app: Flask) -> list[tuple[str, str]]:
    """(method, path) of every view that acts for a logged-in person: agent page, console, complaint button."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint in OPEN or not rule.endpoint.startswith(("agent.", "supervisor.", "complaints.flag")):
            continue
        path = rule.rule
        for placeholder, value in PLACEHOLDERS.items():
            path = path.replace(placeholder, value)
        path = re.sub(r"<int:[a-z_]+>", "1", path)
        found.extend((method, path) for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))
    return found


def refused(browser: AgentPage, method: str, path: str) -> bool:
    """The request was turned away as not logged in: 401, or the page's redirect to the login."""
    if method == "GET":
        response = browser.get(path)
    else:
        response = browser.client.post(path, json={"call_sid": "CA01", "status": "away", "notes": "x"},
                                       data=None, headers={"X-CSRFToken": browser.csrf})
    return response.status_code == 401 or (response.status_code == 302
                                            and response.headers["Location"].endswith("/agent/login"))


def copy_of(app: Flask, browser: AgentPage) -> AgentPage:
    """Another browser holding a copy of `browser`'s session cookie, as it was at this moment."""
    copy = AgentPage(app.test_client())
    copy.client.set_cookie("session", browser.client.get_cookie("session").value)
    copy.csrf = browser.csrf
    return copy


def still_reached(app: Flask, stolen: AgentPage, endpoints: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The endpoints a copy of `stolen`'s cookie still reaches, each tried with the cookie exactly as copied
    (someone replaying it ignores the server's order to drop it)."""
    return [(method, path) for method, path in endpoints if not refused(copy_of(app, stolen), method, path)]


@pytest.fixture
def people(services) -> None:
    agent_with_password(services, ANA)
    agent_with_password(services, SUE, role="supervisor")


def _logged_in(app: Flask, identity: str) -> AgentPage:
    browser = AgentPage(app.test_client())
    assert browser.login(identity).status_code == 302
    return browser


def _by_supervisor(app: Flask, path: str, data: dict[str, str]) -> None:
    supervisor = _logged_in(app, SUE)
    response = supervisor.client.post(path, data={**data, "csrf_token": supervisor.csrf})
    assert response.status_code == 302, response.get_data(as_text=True)


def _cli(config, *args: str) -> None:
    env = {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url, "DIRECTO_DATA_DIR": config.data_dir,
           "TWILIO_AUTH_TOKEN": config.twilio_auth_token}
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output


ENDINGS = {
    "logout in another browser": lambda app, config, ana: ana.client.post("/agent/logout",
                                                                         data={"csrf_token": ana.csrf}),
    "password reset by a supervisor": lambda app, config, ana: _by_supervisor(
        app, f"/supervisor/agents/{ANA}/password", {"password": NEW_PASSWORD}),
    "password set from the command line": lambda app, config, ana: _cli(
        config, "agent", "password", ANA, "--password", NEW_PASSWORD),
    "role change": lambda app, config, ana: _by_supervisor(app, f"/supervisor/agents/{ANA}/role",
                                                          {"role": "supervisor"}),
    "deactivation, even once reactivated": lambda app, config, ana: (
        _by_supervisor(app, f"/supervisor/agents/{ANA}/active", {"active": "0"}),
        _by_supervisor(app, f"/supervisor/agents/{ANA}/active", {"active": "1"})),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
def test_every_copy_of_a_session_ends_everywhere(app, config, people, ending) -> None:
    ana = _logged_in(app, ANA)
    stolen = copy_of(app, ana)
    endpoints = personal_endpoints(app)
    assert len(endpoints) >= 25 and ("POST", "/complaints/flag") in endpoints
    assert stolen.get("/agent/state").status_code == 200, "a copied cookie works while the session lives"

    ENDINGS[ending](app, config, ana)

    still_open = still_reached(app, stolen, endpoints)
    assert still_open == [], f"after {ending} the old cookie still reaches {still_open}"
    if ending != "logout in another browser":
        assert refused(ana, "GET", "/agent/state"), "the person's own browser is logged out too"
    password = PASSWORD if "password" not in ending else NEW_PASSWORD
    assert AgentPage(app.test_client()).login(ANA, password).status_code == 302, "a fresh login works"


def test_each_request_reads_the_active_flag_and_role_from_the_database(app, services, people, twilio) -> None:
    """Even a change made behind the app's back (plain SQL, no session version raised) takes effect at once."""
    admin.set_status(services, ANA, "available")
    answered_call(services, twilio, "CA01", agent=ANA)
    ana, sue = _logged_in(app, ANA), _logged_in(app, SUE)
    with services.db.session() as session:
        session.execute(text("UPDATE agents SET active = :no WHERE identity = :who"), {"no": False, "who": ANA})
        session.execute(text("UPDATE agents SET role = 'agent' WHERE identity = :who"), {"who": SUE})
    flagged = copy_of(app, ana).client.post("/complaints/flag", json={"call_sid": "CA01", "summary": "cobro doble"},
                                            headers={"X-CSRFToken": ana.csrf})
    assert flagged.status_code == 401, "a deactivated agent's cookie flags nothing"
    with services.db.session() as session:
        assert session.scalars(select(Complaint)).all() == [], "no reference issued, no SMS to the customer"
    assert services.queue.count == 0
    assert still_reached(app, ana, personal_endpoints(app)) == []
    assert sue.get("/supervisor/calls").status_code == 403, "a supervisor made agent loses the console at once"
    assert sue.get("/agent/state").status_code == 200, "and keeps the agent page"


def _signed_at(monkeypatch, moment: float) -> None:
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: int(moment))


def test_a_session_unused_for_a_working_day_expires_and_use_keeps_it_alive(app, people, monkeypatch) -> None:
    assert app.permanent_session_lifetime.total_seconds() == 8 * 3600
    now = time.time()
    _signed_at(monkeypatch, now - 8 * 3600 - 60)  # logged in, then left unused for a working day
    idle = _logged_in(app, ANA)
    _signed_at(monkeypatch, now - 7 * 3600)  # another person, who used their page seven hours ago
    busy = _logged_in(app, SUE)
    monkeypatch.undo()
    assert refused(idle, "GET", "/agent/state")
    used = busy.get("/agent/state")
    assert used.status_code == 200 and "session=" in used.headers["Set-Cookie"], "every request renews it"


def _login_over(app: Flask, base_url: str, seen_as: str = "", **headers: str) -> str:
    """Log in as ANA at `base_url` (`seen_as` by the browser, behind a proxy); the Set-Cookie of the session."""
    client = app.test_client()
    form = client.get("/agent/login", base_url=base_url, headers=headers).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    response = client.post("/agent/login", base_url=base_url, data={"identity": ANA, "password": PASSWORD,
                           "csrf_token": token}, headers={"Referer": f"{seen_as or base_url}/agent/login", **headers})
    assert response.status_code == 302, response.get_data(as_text=True)
    return next(value for value in response.headers.getlist("Set-Cookie") if value.startswith("session="))


def test_the_session_cookie_is_secure_whenever_it_travels_over_tls(app, config, people) -> None:
    assert "Secure" in _login_over(app, "https://cc.example.com"), "TLS straight to the app"
    assert "Secure" not in _login_over(app, "http://127.0.0.1:5000"), "plain HTTP on a laptop still logs in"
    behind_proxy = create_app(dataclasses.replace(config, trusted_proxies=1))
    try:
        cookie = _login_over(behind_proxy, "http://10.0.0.5:5000", "https://cc.example.com",
                             **{"X-Forwarded-Proto": "https", "X-Forwarded-Host": "cc.example.com"})
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    finally:
        behind_proxy.extensions["directo"].close()
