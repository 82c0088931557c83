"""Calls the last resort answered while the database failed are noted, and put on record once it answers again,
with the callback they were promised: an outage of the record loses no call from it and breaks no promise."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

import pytest
from conftest import TwilioWebhooks
from rq import SimpleWorker
from sqlalchemy import select, text
from test_incoming import add, dial_of

from directo.core.db import fresh_database
from directo.core.jobs import use_services
from directo.core.models import Call, Callback, CallEvent
from directo.core.states import AgentStatus
from routing.presence import presence
from routing.rescued import NOTES, record_rescued_job


@pytest.fixture
def outage(config, redis_url, tmp_path):
    """An app on a database of its own whose calls table can be taken away and given back; Twilio cannot be
    asked how the calls went (nothing listens there), so they are recorded as rung."""
    from voice import create_app

    with fresh_database(config.database_url, tmp_path) as url:
        app = create_app(replace(config, database_url=url, twilio_api_base_url="http://127.0.0.1:1"))
        services = app.extensions["directo"]
        services.redis.flushdb()
        use_services(services)

        def database(up: bool) -> None:
            old, new = ("calls_lost", "calls") if up else ("calls", "calls_lost")
            with services.db.session() as session:
                session.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))

        try:
            yield services, TwilioWebhooks(app.test_client()), database
        finally:
            use_services(None)
            services.close()


def _sweep(services) -> int:
    job = services.queue.enqueue(record_rescued_job)
    SimpleWorker([services.queue], connection=services.redis).work(burst=True)
    return job.return_value()


def _call(services, sid: str) -> tuple[Call, list[CallEvent]]:
    with services.db.session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == sid))
        events = session.scalars(select(CallEvent).where(CallEvent.call_id == call.id)).all()
        session.expunge_all()
    return call, events


def test_a_call_rung_through_during_the_outage_is_put_on_record_by_the_sweep(outage) -> None:
    services, twilio, database = outage
    add(services, "ana")
    database(up=False)
    dial = dial_of(twilio.incoming("CA1", from_="+34600111222"))
    assert [c.find("Identity").text for c in dial.findall("Client")] == ["ana"]
    assert services.redis.hexists(NOTES, "CA1"), "noted while the record cannot be written"
    assert _sweep(services) is None and services.redis.hexists(NOTES, "CA1"), "kept while the database fails"
    database(up=True)
    assert _sweep(services) == 1
    assert not services.redis.hexists(NOTES, "CA1")
    call, events = _call(services, "CA1")
    assert call.outcome == "fallback" and call.caller == "+34600111222"
    assert [(e.kind, e.detail["rung"]) for e in events] == [("rescued", ["ana"])]
    assert _sweep(services) == 0, "recorded once"


def test_a_rescued_call_nobody_answered_is_recorded_by_its_dial_action_and_promised_a_callback(outage) -> None:
    """The sweep may not have run yet when the everyone-rings <Dial> ends: its action puts the call on record."""
    services, twilio, database = outage
    add(services, "ana")
    database(up=False)
    action = dial_of(twilio.incoming("CA1", from_="+34600111222")).get("action")
    assert urlsplit(action).path == "/voice/rescued/dial-complete"
    database(up=True)
    answer = twilio.dial_complete(action, "CA1", "no-answer", From="+34600111222")
    assert answer.xml.find("Record") is not None, "a callback is promised, then the reason recorded"
    call, _ = _call(services, "CA1")
    assert call.outcome == "callback" and call.callback_id is not None
    assert not services.redis.hexists(NOTES, "CA1")


def test_with_nobody_free_during_the_outage_a_callback_is_promised_and_kept(outage) -> None:
    services, twilio, database = outage
    add(services, "ana", status="away")
    database(up=False)
    answer = twilio.incoming("CA1", from_="+34600111222")
    assert "le llamará a este mismo número" in answer.xml.find("Say").text
    assert answer.xml[-1].tag == "Hangup"
    database(up=True)
    assert _sweep(services) == 1
    call, events = _call(services, "CA1")
    with services.db.session() as session:
        callback = session.get(Callback, call.callback_id)
    assert call.outcome == "callback" and callback.state == "queued" and callback.phone == "+34600111222"
    assert callback.queued_at == call.started_at, "the promise runs from when they called"
    assert events[0].detail["callback_id"] == callback.id


def test_a_withheld_caller_with_nobody_free_is_not_promised_what_cannot_be_kept(outage) -> None:
    services, twilio, database = outage
    database(up=False)
    answer = twilio.incoming("CA1", from_="anonymous")
    assert answer.xml.find("Record") is None and "llámenos de nuevo" in answer.xml.find("Say").text
    assert not services.redis.hexists(NOTES, "CA1")


def test_the_agent_answering_a_rescued_call_puts_it_on_record_as_theirs(outage) -> None:
    services, twilio, database = outage
    add(services, "ana")
    database(up=False)
    leg_url = dial_of(twilio.incoming("CA1", from_="+34600111222")).find("Client").get("statusCallback")
    assert urlsplit(leg_url).path == "/voice/rescued/agent-leg"
    database(up=True)
    assert twilio.agent_leg(leg_url, "CA1", "in-progress", "client:ana").status == 200
    call, _ = _call(services, "CA1")
    assert call.answered_at is not None and call.outcome == "answered"
    with services.db.session() as session:
        assert session.get(type(call), call.id).agent.identity == "ana"


def test_an_agent_who_answers_a_rescued_call_is_not_rung_for_the_next_one(outage) -> None:
    """Their answer reaches the live state before the database (still failing) is asked anything."""
    services, twilio, database = outage
    add(services, "ana")
    add(services, "bea")
    database(up=False)
    first = dial_of(twilio.incoming("CA1", from_="+34600111222"))
    assert sorted(c.find("Identity").text for c in first.findall("Client")) == ["ana", "bea"]
    assert twilio.agent_leg(first.find("Client").get("statusCallback"), "CA1", "in-progress", "client:ana").status \
        == 200
    assert presence(services).states()["ana"]["status"] == AgentStatus.BUSY
    second = dial_of(twilio.incoming("CA2", from_="+34600333444"))
    assert [c.find("Identity").text for c in second.findall("Client")] == ["bea"]


def test_flagging_a_complaint_on_a_rescued_call_puts_the_call_on_record_first(outage) -> None:
    """Before the sweep has run, the complaint button finds the call through its note, not 'no call CA1'. Who
    answered comes from Twilio, which cannot be asked here, so the call has no person yet (the drills cover that)."""
    from test_agent_page import AgentPage, agent_with_password

    services, twilio, database = outage
    add(services, "ana")
    agent_with_password(services, "sara", role="supervisor")
    database(up=False)
    twilio.incoming("CA1", from_="+34600111222")
    database(up=True)
    page = AgentPage(twilio.client)
    assert page.login("sara").status_code == 302
    flagged = page.post("/complaints/flag", {"call_sid": "CA1", "summary": "charged twice"})
    assert flagged.get_json()["error"] == "call CA1 has not reached a person yet", "found, not 'no call CA1'"
    assert _call(services, "CA1")[0].outcome == "fallback"
    assert not services.redis.hexists(NOTES, "CA1")
