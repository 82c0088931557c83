"""The agent page's server side: login, presence, softphone token, screen pop context, notes, recordings, events."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from test_incoming import complete_call, dial_of

from directo.cli import main
from directo.core.models import Agent, Call, Callback, Complaint, Customer, Recording, utcnow
from directo.core.states import ComplaintState
from routing import agents as admin
from routing import roster
from routing.presence import presence
from voice import create_app
from voice.agent_text import TEXT

PASSWORD = "correct horse battery"
CALLER = "+34600111222"


class AgentPage:
    """A browser's view of the page through the test client: a session cookie and the CSRF token from the HTML."""

    def __init__(self, client) -> None:
        self.client = client
        self.csrf = ""

    def _token_from(self, html: str) -> str:
        return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)

    def login(self, identity: str, password: str = PASSWORD):
        self.csrf = self._token_from(self.client.get("/agent/login").get_data(as_text=True))
        response = self.client.post("/agent/login", data={"identity": identity, "password": password,
                                                          "csrf_token": self.csrf})
        if response.status_code == 302:
            self.csrf = self._token_from(self.client.get("/agent/").get_data(as_text=True))
        return response

    def post(self, path: str, body: dict, *, csrf: bool = True):
        headers = {"X-CSRFToken": self.csrf} if csrf else {}
        return self.client.post(path, json=body, headers=headers)

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)


def agent_with_password(services, identity: str, *langs: str, status: str = "offline", role: str = "agent") -> None:
    roster.add_agent(services, identity, identity.title(), list(langs) or ["es"], role=role)
    roster.set_password(services, identity, PASSWORD)
    if status != "offline":
        admin.set_status(services, identity, status)
    time.sleep(0.01)


@pytest.fixture
def page(client) -> AgentPage:
    return AgentPage(client)


@pytest.fixture
def other(app) -> AgentPage:
    return AgentPage(app.test_client())


# --- login ----------------------------------------------------------------------------------------------


def test_login_page_then_desk_then_logout(services, page) -> None:
    agent_with_password(services, "ana", "es", "en")
    assert page.get("/agent/").headers["Location"].endswith("/agent/login")
    response = page.login("ana")
    assert response.status_code == 302 and response.headers["Location"].endswith("/agent/")
    desk = page.get("/agent/").get_data(as_text=True)
    assert "Ana" in desk and TEXT["es"]["ready"] in desk  # the agent's first language
    assert TEXT["en"]["log_out"] in page.get("/agent/?lang=en").get_data(as_text=True)
    assert page.client.post("/agent/logout").status_code == 400  # no CSRF token: refused
    assert page.get("/agent/state").status_code == 200
    assert page.client.post("/agent/logout", data={"csrf_token": page.csrf}).status_code == 302
    assert page.get("/agent/state").status_code == 401


def test_wrong_password_unknown_user_and_inactive_agent_get_the_same_answer(services, page) -> None:
    agent_with_password(services, "ana")
    agent_with_password(services, "old")
    with services.db.session() as session:
        session.scalar(select(Agent).where(Agent.identity == "old")).active = False
    answers = [page.login(identity, password) for identity, password in
               (("ana", "wrong password"), ("ghost", PASSWORD), ("old", PASSWORD))]
    assert {a.status_code for a in answers} == {401}
    assert all(TEXT["es"]["bad_login"] in a.get_data(as_text=True) for a in answers)
    assert page.get("/agent/state").status_code == 401


def test_login_without_csrf_token_is_refused(services, client) -> None:
    agent_with_password(services, "ana")
    assert client.post("/agent/login", data={"identity": "ana", "password": PASSWORD}).status_code == 400


def test_deactivated_agent_loses_their_session(services, page) -> None:
    agent_with_password(services, "ana")
    page.login("ana")
    with services.db.session() as session:
        session.scalar(select(Agent).where(Agent.identity == "ana")).active = False
    assert page.get("/agent/state").status_code == 401


def test_password_is_stored_hashed_and_set_from_the_cli(services, config) -> None:
    roster.add_agent(services, "ana", "Ana", ["es"])
    env = {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url,
           "DIRECTO_DATA_DIR": config.data_dir, "TWILIO_AUTH_TOKEN": config.twilio_auth_token}
    result = CliRunner().invoke(main, ["agent", "password", "ana"], input=f"{PASSWORD}\n{PASSWORD}\n", env=env)
    assert result.exit_code == 0 and "password set for ana" in result.output, result.output
    assert PASSWORD not in result.output
    with services.db.session() as session:
        stored = session.scalar(select(Agent.password_hash).where(Agent.identity == "ana"))
    assert stored and PASSWORD not in stored
    assert roster.check_password(services, "ana", PASSWORD).identity == "ana"
    assert roster.check_password(services, "ana", "nope") is None
    short = CliRunner().invoke(main, ["agent", "password", "ana", "--password", "short"], env=env)
    assert short.exit_code != 0 and "too short" in short.output
    added = CliRunner().invoke(main, ["agent", "add", "sue", "--name", "Sue", "--role", "supervisor",
                                      "--password", PASSWORD], env=env)
    assert added.exit_code == 0, added.output
    assert roster.check_password(services, "sue", PASSWORD).role == "supervisor"


# --- presence -------------------------------------------------------------------------------------------


def test_status_buttons_change_live_presence(services, page) -> None:
    agent_with_password(services, "ana")
    page.login("ana")
    assert page.post("/agent/status", {"status": "available"}, csrf=False).status_code == 400
    answer = page.post("/agent/status", {"status": "available"})
    assert answer.status_code == 200 and answer.json["status"] == "available"
    assert presence(services).state("ana")["status"] == "available"
    assert page.post("/agent/status", {"status": "away"}).json["status"] == "away"
    assert presence(services).state("ana")["status"] == "away"
    bad = page.post("/agent/status", {"status": "busy"})
    assert bad.status_code == 400 and "available, away, offline" in bad.json["error"]


def test_status_change_during_a_call_is_refused_with_the_reason(services, page, twilio) -> None:
    agent_with_password(services, "ana", status="available")
    page.login("ana")
    twilio.incoming("CA01", from_=CALLER)
    refused = page.post("/agent/status", {"status": "away"})
    assert refused.status_code == 409 and "on call CA01" in refused.json["error"]
    state = page.get("/agent/state").json
    assert state | {"server_time": 0, "v": 0} == {"status": "reserved", "call": "CA01", "until": None,
                                                  "server_time": 0, "v": 0}
    assert state["v"] == int(presence(services).state("ana")["v"]), "the version of the state, to order pushes by"


def test_wrapup_countdown_and_ready_ends_it(services, page, twilio) -> None:
    agent_with_password(services, "ana", status="available")
    page.login("ana")
    answer = twilio.incoming("CA01", from_=CALLER)
    complete_call(twilio, answer, "CA01", "ana")
    state = page.get("/agent/state").json
    assert state["status"] == "wrapup" and 25 < state["until"] - state["server_time"] <= 30
    assert page.post("/agent/status", {"status": "available"}).json == page.get("/agent/state").json | {
        "status": "available", "until": None, "server_time": pytest.approx(time.time(), abs=5)}


# --- softphone token ------------------------------------------------------------------------------------


def test_token_endpoint_says_softphone_offline_without_credentials(services, page) -> None:
    agent_with_password(services, "ana")
    assert page.get("/agent/token").status_code == 401
    page.login("ana")
    offline = page.get("/agent/token")
    assert offline.status_code == 503
    assert offline.json["error"] == "TWILIO_API_KEY, TWILIO_API_SECRET, TWILIO_TWIML_APP_SID not configured"


def test_token_is_a_short_lived_voice_grant_for_the_agent_only(config, clean) -> None:
    secret = "s" * 32
    app = create_app(dataclasses.replace(config, twilio_api_key="SK" + "1" * 32, twilio_api_secret=secret,
                                         twilio_twiml_app_sid="AP" + "2" * 32))
    try:
        agent_with_password(app.extensions["directo"], "ana")
        page = AgentPage(app.test_client())
        page.login("ana")
        before = int(time.time())
        token = page.get("/agent/token").json["token"]
        claims = jwt.decode(token, secret, algorithms=["HS256"])
        assert jwt.get_unverified_header(token)["cty"] == "twilio-fpa;v=1"
        assert claims["iss"] == "SK" + "1" * 32 and claims["sub"] == config.twilio_account_sid
        assert claims["grants"]["identity"] == "ana"
        assert claims["grants"]["voice"] == {"incoming": {"allow": True},
                                             "outgoing": {"application_sid": "AP" + "2" * 32}}
        assert before + 3600 <= claims["exp"] <= int(time.time()) + 3600
        with pytest.raises(jwt.InvalidSignatureError):
            jwt.decode(token, "another secret", algorithms=["HS256"])
    finally:
        app.extensions["directo"].close()


# --- screen pop context, notes --------------------------------------------------------------------------


def caller_with_history(services, twilio) -> None:
    """Ana helped Lucía once; Lucía has an open and a resolved complaint; Ana is available again."""
    agent_with_password(services, "ana", status="available")
    first = twilio.incoming("CA01", from_=CALLER)
    complete_call(twilio, first, "CA01", "ana")
    admin.set_status(services, "ana", "available")
    with services.db.session() as session:
        customer = session.scalar(select(Customer).where(Customer.phone == CALLER))
        customer.name = "Lucía Pérez"
        for number, resolved in ((41, utcnow()), (42, None)):
            earlier = Call(call_sid=f"CA-earlier-{number}", customer_id=customer.id, caller=CALLER, language="es",
                           outcome="answered")
            session.add(earlier)
            session.flush()
            session.add(Complaint(reference=f"R-2026-0000{number}", call_id=earlier.id, customer_id=customer.id,
                                  language="es", summary=f"complaint {number}", flagged_by="ana",
                                  resolved_at=resolved, due_at=utcnow(), first_due_at=utcnow(),
                                  state=ComplaintState.CLOSED if resolved else ComplaintState.RECEIVED))


def _answered_call_then_new_call(services, twilio) -> None:
    caller_with_history(services, twilio)
    agent_with_password(services, "bob", status="available")
    twilio.incoming("CA02", from_=CALLER)


def test_context_shows_who_is_calling_for_the_reserved_agent_only(services, twilio, page, other, app) -> None:
    _answered_call_then_new_call(services, twilio)
    page.login("ana")
    context = page.get("/agent/calls/CA02/context")
    assert context.status_code == 200, context.json
    body = context.json
    assert body["caller"] == {"number": CALLER, "name": "Lucía Pérez", "language": "es"}
    assert body["previous_calls"]["with_company"] == 1 and body["previous_calls"]["with_you"] == 1
    assert body["previous_calls"]["recent"][0]["agent"] == "Ana"
    assert body["last_agent"] == {"identity": "ana", "name": "Ana"}
    assert [c["reference"] for c in body["open_complaints"]] == ["R-2026-000042"]
    assert body["callback"] is None and body["complaint"] is None
    other.login("bob")
    assert other.get("/agent/calls/CA02/context").status_code == 403
    assert other.get("/agent/calls/CA99/context").status_code == 404
    assert app.test_client().get("/agent/calls/CA02/context").status_code == 401
    agent_with_password(services, "sue", role="supervisor")
    supervisor = AgentPage(app.test_client())
    assert supervisor.login("sue").headers["Location"].endswith("/supervisor/"), "supervisors land on the console"
    assert supervisor.get("/agent/calls/CA02/context").json["caller"]["name"] == "Lucía Pérez"


def test_notes_are_saved_on_the_call_by_its_agent_only(services, twilio, page, other) -> None:
    _answered_call_then_new_call(services, twilio)
    page.login("ana")
    other.login("bob")
    assert page.post("/agent/calls/CA02/notes", {"notes": "wants a refund"}, csrf=False).status_code == 400
    assert other.post("/agent/calls/CA02/notes", {"notes": "mine now"}).status_code == 403
    assert page.post("/agent/calls/CA02/notes", {"notes": "x" * 10_001}).status_code == 400
    assert page.post("/agent/calls/CA02/notes", {"notes": 7}).status_code == 400
    assert page.post("/agent/calls/CA02/notes", {"notes": "early"}).status_code == 403, "ringing, not taken yet"
    leg_url = dial_of(twilio.incoming("CA02", from_=CALLER)).find("Client").get("statusCallback")  # a redelivery
    twilio.agent_leg(leg_url, "CA02", "in-progress", "client:ana")
    saved = page.post("/agent/calls/CA02/notes", {"notes": "wants a refund"})
    assert saved.status_code == 200
    with services.db.session() as session:
        assert session.scalar(select(Call.notes).where(Call.call_sid == "CA02")) == "wants a refund"
    assert page.get("/agent/calls/CA02/context").json["notes"] == "wants a refund"


# --- callbacks and their recorded reason ----------------------------------------------------------------


def _callback_with_reason(services, config, agent: str) -> tuple[int, bytes]:
    audio = bytes(range(256)) * 40
    stored = Path(config.recordings_dir) / "ab" / "abcdef.mp3"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(audio)
    with services.db.session() as session:
        me = session.scalar(select(Agent).where(Agent.identity == agent))
        customer = Customer(phone=CALLER, name="Lucía Pérez", language="es")
        recording = Recording(twilio_sid="RE01", call_sid="CA01", kind="callback-reason", source_url="https://x",
                              state="stored", path="ab/abcdef.mp3", format="mp3", size_bytes=len(audio))
        session.add_all([customer, recording])
        session.flush()
        callback = Callback(customer_id=customer.id, phone=CALLER, language="es", state="reserved", agent_id=me.id,
                            promised_by=utcnow() + timedelta(minutes=15), reason_recording_id=recording.id)
        session.add(callback)
        session.flush()
        return callback.id, audio


def test_callback_context_plays_the_recorded_reason_with_range_requests(services, config, page, other) -> None:
    agent_with_password(services, "ana")
    agent_with_password(services, "bob")
    callback_id, audio = _callback_with_reason(services, config, "ana")
    page.login("ana")
    context = page.get(f"/agent/callbacks/{callback_id}/context").json
    assert context["caller"]["name"] == "Lucía Pérez" and context["direction"] == "callback"
    url = context["callback"]["reason_url"]
    assert url.startswith("/agent/recordings/")
    part = page.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == audio[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(audio)}"
    assert part.headers["Content-Type"] == "audio/mpeg"
    assert page.get(url).data == audio
    other.login("bob")
    assert other.get(url).status_code == 403
    assert other.get(f"/agent/callbacks/{callback_id}/context").status_code == 403
    assert page.get("/agent/recordings/999").status_code == 404
