"""A complaint's SMS survives a worker killed in the middle of sending it, and is not sent twice."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from conftest import TwilioWebhooks, worker_env
from rq.job import JobStatus
from sqlalchemy import select, update
from test_callbacks import add_agent
from test_callbacks_durability import kill_worker
from test_incoming import dial_of

from directo.core.models import SmsMessage, utcnow
from recordings import audit
from recordings.attempts import status
from recordings.complaints import flag
from recordings.jobs import resume_pending
from standin import Answer

CALLER = "+34600444555"


def messages(services) -> list[SmsMessage]:
    with services.db.session() as session:
        return session.scalars(select(SmsMessage).order_by(SmsMessage.id)).all()


def test_worker_killed_while_sending_the_reference_loses_nothing_and_texts_once(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana")
    hooks = TwilioWebhooks(cc.app.test_client(), base=cc.url)  # signed for the public URL the app checks
    answer = hooks.incoming("CA-complaint", from_=CALLER)
    hooks.agent_leg(dial_of(answer).find("Client").get("statusCallback"), "CA-complaint", "in-progress", "client:ana")
    cc.standin.network.set_behaviour(CALLER, Answer())
    cc.standin.faults.delay("Messages", 3.0)  # Twilio is slow: the job is inside messages.create when it dies
    flagged = flag(cc.services, "CA-complaint", "ana", summary="Cobro indebido",
                   status_url=cc.url + "/voice/complaints/sms-status")
    worker = subprocess.Popen([sys.executable, "-m", "directo.cli", "worker"], env=worker_env(cc.services.config),
                              start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cc.until(lambda: cc.standin.faults.delays_left("Messages") == 0, jobs=False, timeout=30)
    finally:
        kill_worker(worker)  # mid-job: the horse is inside messages.create
    [lost] = messages(cc.services)
    assert lost.state == "pending" and lost.message_sid is None, "the job died before it learnt the SID"
    cc.standin.network.wait_until(lambda net: net.messages, timeout=15)  # Twilio sent it all the same
    with cc.services.db.session() as session:  # time passes: the message has stalled
        session.execute(update(SmsMessage).values(updated_at=utcnow() - timedelta(minutes=5)))
    assert resume_pending(cc.services) >= 1
    cc.until(lambda: messages(cc.services)[0].state == "delivered", timeout=30)
    assert len(cc.standin.network.messages) == 1, "the message the dead worker sent was adopted, not sent again"
    assert flagged.reference in cc.standin.network.messages[0].body
    with cc.services.db.session() as session:
        assert audit.verify(session).intact
        assert "sms-delivered" in [e.event for e in audit.entries(session)]


def test_a_long_twilio_outage_keeps_one_chain_of_retries_per_text(callcenter) -> None:
    """A failed try is retried by RQ on its schedule; the sweep, which runs every few seconds, starts no second
    chain of retries for the same text meanwhile (it once started one per failed try, each with retries of its own,
    and several workers could then send one text at once)."""
    cc = callcenter
    add_agent(cc.services, "ana")
    hooks = TwilioWebhooks(cc.app.test_client(), base=cc.url)
    answer = hooks.incoming("CA-complaint", from_=CALLER)
    hooks.agent_leg(dial_of(answer).find("Client").get("statusCallback"), "CA-complaint", "in-progress", "client:ana")
    cc.standin.faults.refuse_messages(1, status=503)
    flag(cc.services, "CA-complaint", "ana", summary="Cobro indebido",
         status_url=cc.url + "/voice/complaints/sms-status")
    cc.run_jobs()
    [text] = messages(cc.services)
    assert text.state == "pending" and text.attempts == 1, "the first try failed"
    assert status(cc.services.queue, "sms-1-0") == JobStatus.SCHEDULED, "RQ will try it again"
    assert [resume_pending(cc.services) for _ in range(3)] == [0, 0, 0], "the sweep leaves it to its retry"
    assert cc.services.queue.get_job_ids() == [] and cc.standin.network.messages == []
