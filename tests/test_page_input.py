"""Malformed page input is the client's mistake: a 400 that says what is wrong, never a 500 (issue 14, point 13).
Dates at the ends of the calendar, cursors and ids with 25 digits, NUL characters, JSON that is not an object."""

from __future__ import annotations

import pytest
import test_agent_page
import test_supervisor
from test_agent_page import AgentPage, agent_with_password

HUGE = "9" * 25
# Fixtures shared with the agent page's and the console's tests: a browser, and a supervisor logged in.
page, console, sup = test_agent_page.page, test_supervisor.console, test_supervisor.sup


@pytest.fixture
def agent(services, page) -> AgentPage:
    agent_with_password(services, "ana", status="available")
    assert page.login("ana").status_code == 302
    return page


def _plain_400(response, *words: str) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code == 400, (response.status_code, body[:500])
    assert "Traceback" not in body and "sqlalchemy" not in body.lower()
    for word in words:
        assert word in body, body


@pytest.mark.parametrize("query", [
    "to=9999-12-31", "from=9999-12-31", "from=0001-01-01", "from=0001-01-01&to=9999-12-31",
])
@pytest.mark.parametrize("register", ["/supervisor/calls", "/supervisor/calls.csv", "/supervisor/complaints",
                                      "/supervisor/complaints.csv"])
def test_dates_at_the_ends_of_the_calendar_are_refused_plainly(sup, register, query) -> None:
    _plain_400(sup.get(f"{register}?{query}"), "date")


@pytest.mark.parametrize("path", [
    f"/supervisor/calls?after=2026-01-01T00:00:00%2B00:00~{HUGE}",
    "/supervisor/calls?after=0001-01-01T00:00:00%2B05:00~1",
    f"/supervisor/complaints?after={HUGE}",
    "/supervisor/complaints?after=%C2%B2",  # a superscript two: str.isdigit() says yes, int() says no
    f"/supervisor/calls/{HUGE}",
])
def test_cursors_and_ids_of_25_digits_are_refused_plainly(sup, path) -> None:
    _plain_400(sup.get(path))


@pytest.mark.parametrize("path", [f"/agent/callbacks/{HUGE}/context", f"/agent/recordings/{HUGE}"])
def test_ids_of_25_digits_on_the_agent_page_are_refused_plainly(agent, path) -> None:
    _plain_400(agent.get(path), "id")


@pytest.mark.parametrize("query", ["agent=an%00a", "caller=%2B3460%00", "outcome=call%00back"])
def test_nul_characters_in_filters_are_refused_plainly(sup, query) -> None:
    _plain_400(sup.get(f"/supervisor/calls?{query}"), "NUL")
    _plain_400(sup.get(f"/supervisor/complaints.csv?{query}"), "NUL")


def test_nul_characters_in_forms_and_paths_are_refused_plainly(sup, app) -> None:
    form = {"identity": "bob", "name": "Bob\x00", "languages": "es", "password": "long enough pass",
            "csrf_token": sup.csrf}
    _plain_400(sup.client.post("/supervisor/agents", data=form), "NUL")
    _plain_400(sup.client.post("/supervisor/agents/bo%00b/languages",
                                data={"languages": "es", "csrf_token": sup.csrf}), "NUL")
    _plain_400(app.test_client().post("/agent/login", data={"identity": "sa\x00ra", "password": "x"}), "NUL")


@pytest.mark.parametrize("path", ["/agent/status", "/agent/calls/CA1/notes", "/complaints/flag"])
@pytest.mark.parametrize("body", [["available"], "available", 3], ids=["array", "string", "number"])
def test_json_that_is_not_an_object_is_refused_plainly(agent, path, body) -> None:
    _plain_400(agent.post(path, body), "JSON object")


def test_json_nested_too_deeply_is_refused_plainly(agent) -> None:
    response = agent.client.post("/agent/status", data="[" * 50_000 + "]" * 50_000,
                                 content_type="application/json", headers={"X-CSRFToken": agent.csrf})
    _plain_400(response, "JSON")


def test_a_page_body_over_its_limit_is_413(client) -> None:
    response = client.post("/agent/login", data={"identity": "ana", "password": "x" * 200_000})
    assert response.status_code == 413
    assert client.post("/agent/login", data={"identity": "ana", "password": "x" * 20_000}).status_code in (400, 401)
