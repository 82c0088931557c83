"""Security headers on the agent page and the supervisor console: a Content-Security-Policy that allows only what
the pages load, no framing, no sniffing, no referrer outside the site, and no caching of customers' data."""

from __future__ import annotations

import pytest
from test_agent_page import AgentPage, agent_with_password
from test_sessions import personal_endpoints


def directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";"))}


@pytest.fixture
def supervisor(app, services) -> AgentPage:
    agent_with_password(services, "sue", role="supervisor")
    browser = AgentPage(app.test_client())
    browser.login("sue")
    return browser


def test_every_page_and_answer_with_customers_data_has_the_headers_and_is_never_cached(app, supervisor) -> None:
    pages = [path for method, path in personal_endpoints(app)
             if method == "GET" and "/events" not in path and "/static/" not in path]
    assert len(pages) >= 12
    for path in [*pages, "/agent/login"]:
        response = supervisor.get(path)
        headers = response.headers
        policy = directives(headers["Content-Security-Policy"])
        assert policy["frame-ancestors"] == ["'none'"], path
        assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"], "no inline code, no eval"
        assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "same-origin"
        assert headers["Cache-Control"] == "no-store", f"{path} ({response.status_code}) may be cached"
        assert "Strict-Transport-Security" not in headers, "plain HTTP: HSTS would be ignored, and is not sent"


def test_the_policy_lets_the_softphone_reach_twilio_and_nothing_else(app, supervisor) -> None:
    policy = directives(supervisor.get("/agent/").headers["Content-Security-Policy"])
    assert policy["connect-src"] == ["'self'", "wss://*.twilio.com", "https://*.twilio.com"]
    assert policy["media-src"] == ["'self'", "blob:", "https://sdk.twilio.com"]
    assert policy["default-src"] == ["'self'"] and policy["form-action"] == ["'self'"]


def test_static_files_may_be_cached_and_tls_gets_hsts(app, client) -> None:
    css = client.get("/agent/static/agent.css")
    assert css.status_code == 200 and css.headers.get("Cache-Control") != "no-store"
    assert "Strict-Transport-Security" in client.get("/agent/login", base_url="https://cc.example.com").headers
