"""Dated promises end to end: made on a call from the agent page (or `directo promises add`), texted to the customer
in their language with the date on the center's clock, rung to their owner at their time (time made to pass by
moving the promise's times in the database), to another agent after the grace window when the owner is away,
counted per agent and day on the board and in `directo promises list`; and what cannot be kept, refused."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from test_agent_page import AgentPage, agent_with_password
from test_callbacks import CUSTOMER, add_agent, callback_for
from test_dated_callbacks import make_due
from test_incoming import complete_call

from directo.cli import main
from directo.core.models import Callback, SmsMessage, utcnow
from directo.core.states import CallbackKind, CallbackState, SmsState, SmsTopic
from routing import agents as admin
from routing import promises
from routing.dispatch import dispatch
from routing.errors import Conflict, Refused
from standin import Answer
from voice.supervisor import board

ALWAYS_OPEN = "Mon-Sun 00:00-24:00"
MADRID = ZoneInfo("Europe/Madrid")


@pytest.fixture
def config(config):
    """Open around the clock, so the tests do not depend on when they run (the hours have tests of their own)."""
    return replace(config, business_hours=ALWAYS_OPEN, time_zone="Europe/Madrid")


def _answered_call(cc, agent: str = "ana") -> str:
    """The customer called and `agent` talked to them: the call a promise is made on."""
    cc.standin.network.set_behaviour(f"client:{agent}", Answer(after=1.0, talk=3.0))
    call = cc.place_call(CUSTOMER).wait(timeout=20)
    return call.sid


def _local(at: datetime) -> str:
    return f"{at.astimezone(MADRID):%H:%M}"


def test_a_promise_is_texted_in_their_language_and_rung_to_its_owner_at_its_time(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana")
    add_agent(cc.services, "bea")
    sid = _answered_call(cc)
    at = (utcnow() + timedelta(hours=2)).replace(second=0, microsecond=0)
    made = promises.promise(cc.services, sid, at, "el reembolso de marzo", "ana")
    assert made.created and made.owner == "ana" and _local(at) in made.words
    cc.until(lambda: any(m.to == CUSTOMER for m in cc.standin.network.messages), timeout=20)
    (text,) = [m for m in cc.standin.network.messages if m.to == CUSTOMER]
    assert text.body.startswith("Le llamaremos el ") and f"a las {_local(at)}" in text.body
    assert "hora de España (Madrid)" in text.body and text.body.endswith("para hablar de: el reembolso de marzo")
    cc.until(lambda: _texts(cc)[-1].state == SmsState.DELIVERED, timeout=20)

    cc.run_jobs()
    _when_free(cc, "ana", "available")  # two hours later her wrap-up is long over
    assert dispatch(cc.services) == [], "not before its time, though both agents are free"
    cc.standin.network.set_behaviour("client:ana", Answer(after=1.0, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, Answer(after=2.0, talk=30.0))
    make_due(cc, made.callback_id)
    assert dispatch(cc.services) == [made.callback_id]
    cc.until(lambda: callback_for(cc.services).state == CallbackState.DONE, timeout=30)
    kept = callback_for(cc.services)
    assert kept.agent.identity == "ana" and kept.kind == CallbackKind.PROMISE
    leg = cc.standin.network.legs_to("client:ana")[-1]
    said = json.dumps([e.detail for e in leg.find("verb") if e.detail.get("verb") == "Say"], ensure_ascii=False)
    assert "sobre: el reembolso de marzo" in said
    (row,) = board.snapshot(cc.services)["promises"]["by_agent"]
    assert row | {"day": None} == {"day": None, "owner": "ana", "on time": 1, "late": 0, "missed": 0, "waiting": 0,
                                   "cancelled": 0, "owner_missed": 0}


def _texts(cc) -> list[SmsMessage]:
    with cc.services.db.session() as session:
        return list(session.scalars(select(SmsMessage).where(SmsMessage.topic == SmsTopic.PROMISE)
                                    .order_by(SmsMessage.id)))


def test_an_owner_away_at_the_time_is_replaced_after_the_grace_window_and_the_board_says_so(callcenter,
                                                                                            config) -> None:
    cc = callcenter
    add_agent(cc.services, "ana")
    add_agent(cc.services, "bea", "es", "en")
    sid = _answered_call(cc)
    made = promises.promise(cc.services, sid, utcnow() + timedelta(days=1), "the refund", "ana")
    cc.run_jobs()
    _when_free(cc, "ana", "away")
    cc.standin.network.set_behaviour("client:bea", Answer(after=1.0, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, Answer(after=2.0, talk=30.0))
    make_due(cc, made.callback_id)
    assert dispatch(cc.services) == [], "inside the grace window only its owner may keep it"
    make_due(cc, made.callback_id, grace=timedelta(0))
    assert dispatch(cc.services) == [made.callback_id]
    cc.until(lambda: callback_for(cc.services).state == CallbackState.DONE, timeout=30)
    assert callback_for(cc.services).agent.identity == "bea"
    snapshot = board.snapshot(cc.services)["promises"]
    assert snapshot["owner_missed"] == [{"owner": "ana", "customer": CUSTOMER, "due_local": snapshot["owner_missed"][0]
                                         ["due_local"], "taken_by": "bea", "standing": "on time"}]
    env = {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url, "DIRECTO_DATA_DIR": config.data_dir,
           "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "BUSINESS_HOURS": ALWAYS_OPEN}
    listed = json.loads(CliRunner().invoke(main, ["promises", "list", "--json"], env=env).output)
    (row,) = listed["promises"]
    assert (row["owner"], row["agent"], row["owner_missed"], row["standing"], row["sms"]) == (
        "ana", "bea", True, "on time", row["sms"])
    assert listed["by_agent_and_day"][0] | {"day": None} == {"day": None, "owner": "ana", "on time": 1, "late": 0,
                                                             "missed": 0, "waiting": 0, "cancelled": 0,
                                                             "owner_missed": 1}
    table = CliRunner().invoke(main, ["promises", "list"], env=env).output
    assert "bea (owner missed)" in table and "OWNER MISSED" in table


def _when_free(cc, identity: str, status: str) -> None:
    """The owner sets their status once their call is over (its last webhooks may still be on their way)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            admin.set_status(cc.services, identity, status)
            return
        except Conflict:
            assert time.monotonic() < deadline, f"{identity} stayed on a call"
            time.sleep(0.1)


def test_a_customer_who_calls_first_reaches_the_owner_who_sees_it_due_and_may_mark_it_done(services, twilio,
                                                                                            app) -> None:
    agent_with_password(services, "bea", status="available")  # idle longest: she would take a stranger's call
    agent_with_password(services, "ana", status="available")
    first = twilio.incoming("CA01", from_=CUSTOMER)
    complete_call(twilio, first, "CA01", "bea")
    made = promises.promise(services, "CA01", utcnow() + timedelta(hours=3), "the refund", "bea")
    admin.set_status(services, "bea", "available")
    second = twilio.incoming("CA02", from_=CUSTOMER)
    assert second.xml.find("Dial/Client/Identity").text == "bea", "the owner, although Ana idled longer"
    page = AgentPage(app.test_client())
    page.login("bea")
    (owed,) = page.get("/agent/calls/CA02/context").json["owed"]
    assert (owed["kind"], owed["about"], owed["owner"]["identity"]) == ("promise", "the refund", "bea")
    done = page.post(f"/customers/promises/{made.callback_id}/done", {"call_sid": "CA02"})
    assert done.status_code == 200, done.json
    assert page.post(f"/customers/promises/{made.callback_id}/done", {"call_sid": "CA02"}).status_code == 200
    closed = callback_for(services)
    assert closed.state == CallbackState.DONE and closed.close_reason == "kept on a call with the customer (by bea)"
    assert page.get("/agent/calls/CA02/context").json["owed"] == []


def test_the_agent_page_makes_a_promise_once_however_often_it_is_sent(services, twilio, app) -> None:
    agent_with_password(services, "ana", status="available")
    twilio.incoming("CA01", from_=CUSTOMER)
    page = AgentPage(app.test_client())
    page.login("ana")
    at = f"{(utcnow() + timedelta(days=2)).astimezone(MADRID):%Y-%m-%dT%H:%M}"
    made = page.post("/customers/promises", {"call_sid": "CA01", "at": at, "about": "el reembolso"})
    assert made.status_code == 201, made.json
    assert made.json["words"].endswith("hora de España (Madrid)") and at[11:] in made.json["words"]
    again = page.post("/customers/promises", {"call_sid": "CA01", "at": at, "about": "el reembolso"})
    assert again.status_code == 200 and again.json["callback_id"] == made.json["callback_id"]
    with services.db.session() as session:
        owed = session.scalars(select(Callback)).all()
        texts = session.scalars(select(SmsMessage)).all()
        owner = owed[0].preferred_agent.identity
    assert len(owed) == 1 and len(texts) == 1
    due = owed[0].due_at
    assert f"{due.astimezone(MADRID):%Y-%m-%dT%H:%M}" == at, "a time without an offset is on the center's clock"
    assert (owner, owed[0].created_by, owed[0].about) == ("ana", "ana", "el reembolso")
    assert (owed[0].exclusive_until - due, owed[0].promised_by - due) == (timedelta(minutes=10),
                                                                          timedelta(minutes=30))


@pytest.mark.parametrize(("at", "about", "message"), [
    ("2001-01-01T10:00", "x", "is in the past"),
    ("next thursday", "x", "is not a date and time"),
    ("+400d", "x", "more than 90 days ahead"),
    ("+1d", "  ", "say what the call will be about"),
    ("+1d", "x" * 301, "under 300 characters"),
])
def test_what_cannot_be_kept_is_refused_on_the_page_and_nothing_is_written(services, twilio, app, at, about,
                                                                            message) -> None:
    agent_with_password(services, "ana", status="available")
    twilio.incoming("CA01", from_=CUSTOMER)
    page = AgentPage(app.test_client())
    page.login("ana")
    if at.startswith("+"):
        at = f"{(utcnow() + timedelta(days=int(at[1:-1]))).astimezone(MADRID):%Y-%m-%dT%H:%M}"
    refused = page.post("/customers/promises", {"call_sid": "CA01", "at": at, "about": about})
    assert refused.status_code == 400 and message in refused.json["error"], refused.json
    with services.db.session() as session:
        assert session.scalars(select(Callback)).all() == [] and session.scalars(select(SmsMessage)).all() == []


def test_a_withheld_number_and_someone_elses_call_are_refused(services, twilio, app) -> None:
    agent_with_password(services, "ana", status="available")
    agent_with_password(services, "bob", status="available")
    twilio.incoming("CA01", from_="anonymous")
    twilio.incoming("CA02", from_=CUSTOMER)
    later = f"{utcnow() + timedelta(days=1):%Y-%m-%dT%H:%M}+00:00"
    page = AgentPage(app.test_client())
    page.login("ana")
    withheld = page.post("/customers/promises", {"call_sid": "CA01", "at": later, "about": "x"})
    assert withheld.status_code == 400 and "withheld" in withheld.json["error"]
    theirs = page.post("/customers/promises", {"call_sid": "CA02", "at": later, "about": "x"})
    assert theirs.status_code == 400 and "not ana's call" in theirs.json["error"]


def test_outside_business_hours_is_refused_naming_the_hours(services, twilio) -> None:
    hours = "Mon-Fri 09:00-14:00,16:00-19:00; Sat 10:00-13:00"
    agent_with_password(services, "ana", status="available")
    twilio.incoming("CA01", from_=CUSTOMER)
    svc = replace(services, config=replace(services.config, business_hours=hours))
    now = datetime.now(MADRID)
    sunday = (now + timedelta(days=(6 - now.weekday()) % 7 or 7)).replace(hour=11, minute=0, second=0, microsecond=0)
    lunch = (sunday + timedelta(days=1)).replace(hour=15)
    for closed in (sunday, lunch, lunch.replace(hour=19)):
        with pytest.raises(Refused, match=r"outside business hours \(Mon-Fri 09:00-14:00,16:00-19:00; Sat "
                                          r"10:00-13:00 \(Europe/Madrid\)\)"):
            promises.promise(svc, "CA01", closed.isoformat(), "x", "ana")
    made = promises.promise(svc, "CA01", lunch.replace(hour=16).isoformat(), "x", "ana")
    assert made.due_at == lunch.replace(hour=16).astimezone(UTC)


def test_cli_adds_a_promise_owned_by_the_calls_agent_and_refuses_clearly(services, twilio, config) -> None:
    agent_with_password(services, "ana", status="available")
    twilio.incoming("CA01", from_=CUSTOMER)
    env = {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url, "DIRECTO_DATA_DIR": config.data_dir,
           "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "BUSINESS_HOURS": ALWAYS_OPEN}
    at = f"{(utcnow() + timedelta(days=1)).astimezone(MADRID):%Y-%m-%dT%H:%M}"
    added = CliRunner().invoke(main, ["promises", "add", "CA01", "--at", at, "--about", "the refund"], env=env)
    assert added.exit_code == 0 and "ana calls on" in added.output and "the SMS is queued" in added.output, \
        added.output
    past = CliRunner().invoke(main, ["promises", "add", "CA01", "--at", "2020-01-01T10:00", "--about", "x"], env=env)
    assert past.exit_code == 1 and "is in the past" in past.output
    closed = CliRunner().invoke(main, ["promises", "add", "CA01", "--at", at, "--about", "x"],
                                env=env | {"BUSINESS_HOURS": "Sun 03:00-03:01"})
    assert closed.exit_code == 1 and "outside business hours" in closed.output
    assert "no call CA99" in CliRunner().invoke(main, ["promises", "add", "CA99", "--at", at, "--about", "x",
                                                       "--by", "ana"], env=env).output
