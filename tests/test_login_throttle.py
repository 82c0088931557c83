"""Failed logins are throttled per identity and per client address, in Redis shared by every web process: 429 with
Retry-After, checked before any password is hashed, and a client's own X-Forwarded-For is never believed."""

from __future__ import annotations

import dataclasses
import re
import time

import pytest
from test_agent_page import PASSWORD, agent_with_password

from voice import create_app


def attempt(client, identity: str, password: str, address: str = "192.0.2.10", **headers: str):
    """One login as a browser at `address` makes it: the form (for its CSRF token), then the post."""
    environ = {"REMOTE_ADDR": address}
    form = client.get("/agent/login", environ_base=environ).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    return client.post("/agent/login", data={"identity": identity, "password": password, "csrf_token": token},
                       environ_base=environ, headers=headers)


@pytest.fixture
def limited(config, clean):
    """The app with small limits, so a test runs in seconds: 3 failures per identity, 6 per address (windows wide
    enough that a loaded machine, where each try's password hashing takes a while, still fits the tries in one)."""
    apps = []

    def build(**changes):
        app = create_app(dataclasses.replace(config, login_failures_per_identity="3 per 8 seconds",
                                             login_failures_per_address="6 per 60 seconds", **changes))
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["directo"].close()


def test_after_the_failures_allowed_even_the_right_password_waits_and_is_told_when(limited) -> None:
    app = limited()
    agent_with_password(app.extensions["directo"], "ana")
    client = app.test_client()
    assert [attempt(client, "ana", "wrong").status_code for _ in range(3)] == [401] * 3
    blocked = attempt(client, "ana", PASSWORD)
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["Retry-After"]) <= 8 + 1, "the 8-second window, rounded up to a whole second"
    assert "Demasiados intentos" in blocked.get_data(as_text=True) and "ana" in blocked.get_data(as_text=True)
    time.sleep(int(blocked.headers["Retry-After"]) + 0.1)
    assert attempt(client, "ana", PASSWORD).status_code == 302, "once the window has passed, the agent logs in"


def test_one_identity_is_throttled_whichever_address_tries_it(limited) -> None:
    app = limited()
    agent_with_password(app.extensions["directo"], "ana")
    client = app.test_client()
    codes = [attempt(client, "ANA ", "wrong", address=f"198.51.100.{n}").status_code for n in range(5)]
    assert codes == [401, 401, 401, 429, 429], "case and spaces do not make another identity"
    assert attempt(client, "bea", "wrong", address="198.51.100.9").status_code == 401, "others are not held up"


def test_one_address_is_throttled_whichever_identities_it_tries(limited) -> None:
    app = limited()
    client = app.test_client()
    codes = [attempt(client, f"guess{n}", "wrong").status_code for n in range(8)]
    assert codes == [401] * 6 + [429] * 2
    assert attempt(client, "guess99", "wrong", address="192.0.2.11").status_code == 401


def test_a_client_cannot_escape_by_naming_another_address_in_x_forwarded_for(limited) -> None:
    app = limited()
    client = app.test_client()
    codes = [attempt(client, f"guess{n}", "wrong", **{"X-Forwarded-For": f"203.0.113.{n}"}).status_code
             for n in range(8)]
    assert codes[-1] == 429, "without TRUSTED_PROXIES the header is ignored: all eight came from one address"
    behind_proxy = limited(trusted_proxies=1)
    proxied = behind_proxy.test_client()
    codes = [attempt(proxied, f"guess{n}", "wrong", address="10.0.0.2", **{"X-Forwarded-For": f"203.0.113.{n}"})
             .status_code for n in range(8)]
    assert codes == [401] * 8, "behind the configured proxy, each client is counted by the address it reports"


def test_counts_are_shared_by_every_web_process(limited) -> None:
    first, second = limited(), limited()
    agent_with_password(first.extensions["directo"], "ana")
    assert attempt(first.test_client(), "ana", "wrong").status_code == 401
    assert attempt(second.test_client(), "ana", "wrong").status_code == 401
    assert attempt(first.test_client(), "ana", "wrong").status_code == 401
    assert attempt(second.test_client(), "ana", PASSWORD).status_code == 429


def test_successful_logins_are_not_counted_so_a_whole_office_can_log_in(limited) -> None:
    app = limited()
    services = app.extensions["directo"]
    for n in range(10):
        agent_with_password(services, f"agent{n}")
    assert [attempt(app.test_client(), f"agent{n}", PASSWORD).status_code for n in range(10)] == [302] * 10


def test_the_defaults_allow_a_few_typos_but_not_a_guessing_run(services, client) -> None:
    agent_with_password(services, "ana")
    codes = [attempt(client, "ana", f"guess {n}").status_code for n in range(30)]
    assert codes == [401] * 5 + [429] * 25
