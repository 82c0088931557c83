"""With Redis unreachable, a caller still reaches a person and the call is still on record."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from conftest import TwilioWebhooks
from rq import SimpleWorker
from sqlalchemy import select, text
from test_incoming import add, client_identity, dial_of

from directo.core.db import fresh_database
from directo.core.jobs import use_services
from directo.core.models import Agent, Call, utcnow
from directo.core.states import AgentStatus, CallOutcome, Direction
from routing.callback_jobs import sweep
from routing.presence import presence
from voice import create_app

UNREACHABLE = "redis://127.0.0.1:1/0"


def test_redis_outage_rings_every_agent_at_work_and_records_the_call(config, clean) -> None:
    app = create_app(replace(config, redis_url=UNREACHABLE, fallback_number="+34910000099"))
    services = app.extensions["directo"]
    try:
        with services.db.session() as session:
            for identity, status in (("ana", "available"), ("bea", "away"), ("off", "offline")):
                agent = Agent(identity=identity, name=identity.title(), status=status)
                agent.languages = ["es"]
                session.add(agent)
        started = time.perf_counter()
        answer = TwilioWebhooks(app.test_client()).incoming("CA1")
        elapsed = time.perf_counter() - started
        assert answer.status == 200
        dial = answer.xml.find("Dial")
        assert [c.find("Identity").text for c in dial.findall("Client")] == ["ana", "bea"]
        assert dial.find("Number").text == "+34910000099"
        assert elapsed < 5, f"the fallback must come well within Twilio's 15 s; took {elapsed:.1f} s"
        with services.db.session() as session:
            call = session.scalar(select(Call).where(Call.call_sid == "CA1"))
            assert call.outcome == "fallback" and call.caller == "+34600111222"
    finally:
        services.close()


def test_redis_outage_does_not_ring_an_agent_the_database_shows_on_a_call(config, clean) -> None:
    app = create_app(replace(config, redis_url=UNREACHABLE))
    services = app.extensions["directo"]
    try:
        with services.db.session() as session:
            people = {identity: Agent(identity=identity, name=identity.title(), status=AgentStatus.AVAILABLE)
                      for identity in ("ana", "bea", "cy")}
            for agent in people.values():
                agent.languages = ["es"]
                session.add(agent)
            session.flush()
            now = utcnow()
            session.add_all([
                Call(call_sid="CAtalking", direction=Direction.INBOUND, caller="+34600000001", language="es",
                     agent_id=people["ana"].id, started_at=now, answered_at=now, outcome=CallOutcome.ANSWERED),
                Call(call_sid="CAringing", direction=Direction.INBOUND, caller="+34600000002", language="es",
                     agent_id=people["cy"].id, started_at=now, outcome=CallOutcome.RINGING)])
        webhooks = TwilioWebhooks(app.test_client())
        answer = webhooks.incoming("CA1")
        assert [c.find("Identity").text for c in answer.xml.find("Dial").findall("Client")] == ["bea"]
        with services.db.session() as session:
            session.add(Call(call_sid="CAbea", direction=Direction.INBOUND, caller="+34600000003", language="es",
                             agent_id=people["bea"].id, started_at=now, answered_at=now, outcome=CallOutcome.ANSWERED))
        everyone_busy = webhooks.incoming("CA2", from_="+34600000004")
        assert everyone_busy.xml.find("Dial") is None and everyone_busy.xml.find("Record") is not None, \
            "everyone at work is on a call: a callback is promised, as when nobody is free"
        with services.db.session() as session:
            assert session.scalar(select(Call).where(Call.call_sid == "CA2")).outcome == CallOutcome.CALLBACK
    finally:
        services.close()


def test_redis_outage_with_no_agent_on_record_still_answers_politely(config, clean) -> None:
    app = create_app(replace(config, redis_url=UNREACHABLE))
    try:
        answer = TwilioWebhooks(app.test_client()).incoming("CA1")
        assert answer.status == 200
        assert answer.xml.find("Say") is not None and answer.xml[-1].tag == "Hangup"
    finally:
        app.extensions["directo"].close()


def test_redis_back_without_its_data_still_puts_callers_through_to_agents_at_work(services, twilio) -> None:
    """Redis restarted empty (no persistence, or a failover to a blank replica): the agents are still at work.

    Presence lives only in Redis; without it every caller would be promised a callback while agents sat
    'available' on their pages. The first call that finds nobody puts presence back from the database.
    """
    add(services, "ana")
    add(services, "bea", status="away")
    add(services, "cy", status="offline")
    services.redis.flushdb()
    assert client_identity(twilio.incoming("CA1")) == "ana"
    states = {identity: state["status"] for identity, state in presence(services).states().items()}
    assert states == {"ana": "reserved", "bea": "away", "cy": "offline"}


def test_an_agent_on_a_call_when_redis_lost_its_data_is_not_given_a_second_one(services, twilio) -> None:
    add(services, "ana")
    first = twilio.incoming("CA1", from_="+34600000001")
    assert client_identity(first) == "ana"
    twilio.agent_leg(dial_of(first).find("Client").get("statusCallback"), "CA1", "in-progress", "client:ana")
    add(services, "bea")
    services.redis.flushdb()
    assert client_identity(twilio.incoming("CA2", from_="+34600000002")) == "bea"
    third = twilio.incoming("CA3", from_="+34600000003")
    assert third.xml.find("Dial") is None, "ana is still talking to the first caller"
    twilio.dial_complete(dial_of(first).get("action"), "CA1", "completed", duration=60)
    twilio.agent_leg(dial_of(first).find("Client").get("statusCallback"), "CA1", "completed", "client:ana")
    twilio.status("CA1", "completed", duration=63)
    assert presence(services).state("ana")["status"] == "wrapup"


def test_the_sweep_puts_presence_back_before_any_call_needs_it(services) -> None:
    add(services, "ana")
    services.redis.flushdb()
    use_services(services)
    services.queue.enqueue(sweep)
    SimpleWorker([services.queue], connection=services.redis).work(burst=True)
    assert presence(services).state("ana")["status"] == "available"


@pytest.fixture
def broken_database(config, redis_url, tmp_path):
    """An app whose database fails under it mid-way (here: the calls table gone), on a database of its own."""
    with fresh_database(config.database_url, tmp_path) as url:
        app = create_app(replace(config, database_url=url))
        services = app.extensions["directo"]
        services.redis.flushdb()

        def break_it() -> None:
            with services.db.session() as session:
                session.execute(text("ALTER TABLE calls RENAME TO calls_lost"))

        try:
            yield app, services, TwilioWebhooks(app.test_client()), break_it
        finally:
            services.close()


def test_a_database_failure_still_puts_the_caller_through_to_the_agents_free(broken_database) -> None:
    app, services, twilio, break_it = broken_database
    add(services, "ana")
    add(services, "bea", status="away")
    break_it()
    answer = twilio.incoming("CA1")
    assert answer.status == 200
    dial = dial_of(answer)
    assert [c.find("Identity").text for c in dial.findall("Client")] == ["ana"], "the free agent, not the away one"
    assert presence(services).state("ana")["status"] == "available", "the failed call's reservation was undone"


def test_a_database_failure_with_nobody_free_dials_the_fallback_number(broken_database) -> None:
    app, services, twilio, break_it = broken_database
    app.config["DIRECTO"] = replace(app.config["DIRECTO"], fallback_number="+34910000099")
    break_it()
    dial = dial_of(twilio.incoming("CA1"))
    assert [n.text for n in dial.findall("Number")] == ["+34910000099"]


def test_a_database_failure_after_an_agent_missed_the_call_rings_the_others(broken_database) -> None:
    app, services, twilio, break_it = broken_database
    add(services, "ana")
    add(services, "bea")
    first = twilio.incoming("CA1")
    missed = client_identity(first)
    break_it()
    retry = twilio.dial_complete(dial_of(first).get("action"), "CA1", "no-answer")
    assert [c.find("Identity").text for c in dial_of(retry).findall("Client")] == [{"ana": "bea", "bea": "ana"}[missed]]
    ended = twilio.dial_complete(dial_of(first).get("action"), "CA2", "completed", CallStatus="completed")
    assert ended.xml.find("Dial") is None, "a conversation that is over is not dialled again"
