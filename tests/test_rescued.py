"""A call put through by the last-resort rescue while the database failed is noted, and put on record by the
worker once the database answers again: an outage of the record loses no call from the call log."""

from __future__ import annotations

from dataclasses import replace

from conftest import TwilioWebhooks
from rq import SimpleWorker
from sqlalchemy import select, text
from test_incoming import add, dial_of

from directo.core.db import fresh_database
from directo.core.jobs import use_services
from directo.core.models import Call, CallEvent
from routing.rescued import NOTES, record_rescued_job
from voice import create_app


def test_a_call_rescued_during_a_database_failure_is_put_on_record_afterwards(config, redis_url, tmp_path) -> None:
    with fresh_database(config.database_url, tmp_path) as url:
        # Twilio cannot be asked here (nothing listens): the call is recorded as rung, not as answered.
        app = create_app(replace(config, database_url=url, twilio_api_base_url="http://127.0.0.1:1"))
        services = app.extensions["directo"]
        services.redis.flushdb()
        try:
            add(services, "ana")
            with services.db.session() as session:
                session.execute(text("ALTER TABLE calls RENAME TO calls_lost"))
            answer = TwilioWebhooks(app.test_client()).incoming("CA1", from_="+34600111222")
            assert [c.find("Identity").text for c in dial_of(answer).findall("Client")] == ["ana"]
            assert services.redis.hexists(NOTES, "CA1"), "noted while the record cannot be written"

            use_services(services)
            services.queue.enqueue(record_rescued_job)
            SimpleWorker([services.queue], connection=services.redis).work(burst=True)
            assert services.redis.hexists(NOTES, "CA1"), "kept while the database still fails"

            with services.db.session() as session:
                session.execute(text("ALTER TABLE calls_lost RENAME TO calls"))  # the database is back
            job = services.queue.enqueue(record_rescued_job)
            SimpleWorker([services.queue], connection=services.redis).work(burst=True)
            assert job.return_value() == 1
            assert not services.redis.hexists(NOTES, "CA1")
            with services.db.session() as session:
                call = session.scalar(select(Call).where(Call.call_sid == "CA1"))
                assert call.outcome == "fallback" and call.caller == "+34600111222"
                event = session.scalar(select(CallEvent).where(CallEvent.call_id == call.id))
                assert event.kind == "rescued" and event.detail["rung"] == ["ana"]
            again = services.queue.enqueue(record_rescued_job)
            SimpleWorker([services.queue], connection=services.redis).work(burst=True)
            assert again.return_value() == 0, "recorded once"
        finally:
            use_services(None)
            services.close()
