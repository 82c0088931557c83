"""With Redis unreachable, a caller still reaches a person and the call is still on record."""

from __future__ import annotations

import time
from dataclasses import replace

from conftest import TwilioWebhooks
from sqlalchemy import select

from directo.models import Agent, Call
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
