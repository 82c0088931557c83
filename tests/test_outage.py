"""With Redis unreachable, a caller still reaches a person and the call is still on record."""

from __future__ import annotations

import time
from dataclasses import replace

from conftest import TwilioWebhooks
from rq import SimpleWorker
from sqlalchemy import select
from test_incoming import add, client_identity, dial_of

from directo.jobs import use_services
from directo.models import Agent, Call
from routing.callback_jobs import sweep
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
    states = {identity: state["status"] for identity, state in services.presence.states().items()}
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
    twilio.status("CA1", "completed", duration=63)
    assert services.presence.state("ana")["status"] == "wrapup"


def test_the_sweep_puts_presence_back_before_any_call_needs_it(services) -> None:
    add(services, "ana")
    services.redis.flushdb()
    use_services(services)
    services.queue.enqueue(sweep)
    SimpleWorker([services.queue], connection=services.redis).work(burst=True)
    assert services.presence.state("ana")["status"] == "available"
