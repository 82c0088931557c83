"""Callbacks end to end: the app on a real server, the Twilio stand-in as the phone network, a real RQ worker."""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import timedelta

from click.testing import CliRunner
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from directo.cli import main
from directo.core.models import Call, Callback, Customer, utcnow
from routing import agents as admin
from routing import roster
from routing.dispatch import dispatch
from routing.presence import presence
from standin import Answer, Busy, NoAnswer

CUSTOMER = "+34600555111"


def add_agent(services, identity: str, *langs: str, status: str = "available") -> None:
    roster.add_agent(services, identity, identity.title(), list(langs) or ["es"])
    if status != "offline":
        admin.set_status(services, identity, status)


def callback_for(services, phone: str = CUSTOMER) -> Callback | None:
    with services.db.session() as session:
        return session.scalar(
            select(Callback)
            .options(selectinload(Callback.agent), selectinload(Callback.preferred_agent))
            .where(Callback.phone == phone)
            .order_by(Callback.id.desc())
        )


def queue_one(cc, phone: str = CUSTOMER, speech: float = 4.0) -> Callback:
    """Nobody is free: the customer calls, hears the promise, says why, hangs up."""
    cc.standin.network.set_behaviour(phone, Answer(speech_seconds=speech, hangup_after_speech=True))
    cc.place_call(phone).wait(timeout=20)
    cc.until(lambda: (cb := callback_for(cc.services, phone)) is not None and cb.reason_recording_url is not None,
             jobs=False)
    return callback_for(cc.services, phone)


def waiting_callback_and_ana(cc, customer_answers_after: float = 2.0, talk: float = 30.0) -> Callback:
    """Ana is offline with a callback waiting; she answers when rung, and so does the customer."""
    add_agent(cc.services, "ana", status="offline")
    callback = queue_one(cc)
    cc.standin.network.set_behaviour("client:ana", Answer(after=1.0, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, Answer(after=customer_answers_after, talk=talk))
    return callback


def test_nobody_free_queues_a_callback_and_attaches_the_recorded_reason(callcenter) -> None:
    cc = callcenter
    callback = queue_one(cc)
    assert callback.state == "queued" and callback.language == "es"
    assert timedelta(minutes=5) <= callback.promised_by - callback.queued_at <= timedelta(minutes=15)
    call = cc.standin.network.calls[0]
    says = [e.detail for e in call.find("verb") if e.detail.get("verb") == "Say"]
    assert "en menos de" in json.dumps(says, ensure_ascii=False), "the promise is spoken, in Spanish"
    recording = cc.standin.network.recordings[0]
    assert callback.reason_recording_url.endswith(recording.sid)
    with cc.services.db.session() as session:
        assert session.scalar(select(Call.outcome).where(Call.call_sid == call.sid)) == "callback"


def test_caller_who_hangs_up_at_once_is_still_called_back(callcenter) -> None:
    cc = callcenter
    cc.place_call(CUSTOMER, caller_hangup_after=0.5).wait(timeout=20)
    callback = callback_for(cc.services)
    assert callback is not None and callback.state == "queued"
    assert callback.reason_recording_url is None


def test_a_second_call_does_not_queue_twice(callcenter) -> None:
    cc = callcenter
    first = queue_one(cc)
    call = cc.place_call(CUSTOMER).wait(timeout=20)
    assert callback_for(cc.services).id == first.id
    with cc.services.db.session() as session:
        assert session.scalar(select(Callback.id).where(Callback.phone == CUSTOMER).offset(1)) is None
        assert session.scalar(select(Call.callback_id).where(Call.call_sid == call.sid)) == first.id
    assert not call.find("verb", verb="Record"), "no second recording: we already have their request"


def test_free_agent_rings_first_hears_who_and_why_then_the_customer_is_called(callcenter) -> None:
    cc = callcenter
    waiting_callback_and_ana(cc, customer_answers_after=3.0, talk=40.0)
    admin.set_status(cc.services, "ana", "available")  # dispatch happens right here
    assert callback_for(cc.services).state == "reserved"
    cc.until(lambda: callback_for(cc.services).state == "done")
    callback = callback_for(cc.services)
    assert callback.close_reason.startswith("kept") and callback.attempts == 1
    agent_leg = cc.standin.network.legs_to("client:ana")[0]
    verbs = [e.detail.get("verb") for e in agent_leg.find("verb")]
    assert verbs[:4] == ["Say", "Say", "Play", "Dial"], "who, 'they said:', their own words, then the customer"
    assert not agent_leg.errors, "the agent really heard the recorded reason"
    played = [e for e in agent_leg.find("webhook") if e.detail.get("purpose") == "play"]
    assert played and played[0].detail["status"] == 200
    with cc.services.db.session() as session:
        call = session.scalar(select(Call).where(Call.callback_id == callback.id, Call.direction == "callback"))
        assert call.outcome == "answered" and call.agent.identity == "ana" and call.answered_at is not None
        assert session.scalar(select(Customer).where(Customer.phone == CUSTOMER)).last_agent_id == call.agent_id
    assert presence(cc.services).state("ana")["status"] == "wrapup"


def test_customer_no_answer_is_retried_inside_the_window_then_missed_and_visible(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana", status="offline")
    queue_one(cc)
    cc.standin.network.set_behaviour("client:ana", Answer(after=0.5, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, NoAnswer())
    admin.set_status(cc.services, "ana", "available")
    cc.until(lambda: callback_for(cc.services).state == "queued" and callback_for(cc.services).attempts == 1)
    first_retry = callback_for(cc.services)
    assert first_retry.due_at > utcnow(), "the retry waits (backoff)"
    assert "did not answer" in first_retry.last_error
    while callback_for(cc.services).state != "missed":  # time passes: each retry becomes due
        attempts = callback_for(cc.services).attempts
        assert callback_for(cc.services).due_at <= callback_for(cc.services).promised_by, "retries stay inside"
        with cc.services.db.session() as session:
            session.execute(update(Callback).values(due_at=utcnow()))
        dispatch(cc.services)
        cc.until(lambda a=attempts: callback_for(cc.services).attempts == a + 1
                 and callback_for(cc.services).state in ("queued", "missed"))
    missed = callback_for(cc.services)
    assert missed.closed_at is not None and missed.attempts == 2, "5-minute promise, 3-minute backoff: 2 tries"
    runner = CliRunner()
    out = runner.invoke(main, ["callbacks", "list", "--json"], env=_env(cc))
    rows = json.loads(out.output)
    assert rows[0]["state"] == "missed" and rows[0]["flag"] == "MISSED" and rows[0]["attempts"] == 2


def test_agent_who_does_not_answer_goes_away_and_the_callback_keeps_its_place(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana", status="offline")
    add_agent(cc.services, "bea", status="offline")
    first = queue_one(cc)
    queue_one(cc, "+34600555222")
    cc.standin.network.set_behaviour("client:ana", Busy())
    cc.standin.network.set_behaviour("client:bea", Answer(after=1.0, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, Answer(after=1.0, talk=20.0))
    admin.set_status(cc.services, "ana", "available")
    cc.until(lambda: presence(cc.services).state("ana")["status"] == "away")
    requeued = callback_for(cc.services)
    assert requeued.state == "queued" and requeued.queued_at == first.queued_at and requeued.attempts == 0
    admin.set_status(cc.services, "bea", "available")
    cc.until(lambda: callback_for(cc.services).state == "done")
    assert callback_for(cc.services).agent.identity == "bea", "the oldest callback went first, to the next agent"


def test_customer_who_reached_a_person_by_calling_in_has_their_callback_closed(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana", status="offline")
    queue_one(cc)
    cc.standin.network.set_behaviour("client:ana", Answer(after=1.0, talk=10.0))
    with cc.services.db.session() as session:  # the promise waits a little (a retry, say), so ana is free
        session.execute(update(Callback).values(due_at=utcnow() + timedelta(minutes=5)))
    admin.set_status(cc.services, "ana", "available")
    cc.standin.network.set_behaviour(CUSTOMER, Answer(talk=None))
    cc.place_call(CUSTOMER, caller_hangup_after=30).wait(timeout=20)
    callback = callback_for(cc.services)
    assert callback.state == "done" and "calling in" in callback.close_reason


def test_previous_agent_is_preferred_for_a_window(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "bea", status="offline")
    add_agent(cc.services, "ana", status="offline")
    with cc.services.db.session() as session:
        session.add(Customer(phone=CUSTOMER, language="es", last_agent_id=1, answered_calls=1))
    queue_one(cc)
    assert callback_for(cc.services).preferred_agent.identity == "bea"
    admin.set_status(cc.services, "ana", "available")
    assert callback_for(cc.services).state == "queued", "ana may not take bea's caller yet"
    with cc.services.db.session() as session:
        session.execute(update(Callback).values(exclusive_until=utcnow() - timedelta(seconds=1)))  # time passes
    assert len(dispatch(cc.services)) == 1, "after the window anyone who speaks Spanish may"


def test_only_one_agent_ever_gets_a_callback_under_concurrency(callcenter) -> None:
    cc = callcenter
    for i in range(8):
        add_agent(cc.services, f"agent{i}", status="offline")
    for i in range(20):
        cc.place_call(f"+3460077{i:04d}", caller_hangup_after=0.5).wait(timeout=20)
    for i in range(8):
        presence(cc.services).transition(f"agent{i}", "available", since=float(i))
    handed: list[int] = []
    barrier = threading.Barrier(6)

    def dispatcher() -> None:
        barrier.wait()
        handed.extend(dispatch(cc.services))

    threads = [threading.Thread(target=dispatcher) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(handed) == 8 and len(set(handed)) == 8, Counter(handed)
    with cc.services.db.session() as session:
        reserved = session.execute(select(Callback.id, Callback.agent_id).where(Callback.state == "reserved")).all()
    assert len(reserved) == 8 and len({agent for _, agent in reserved}) == 8


def _env(cc) -> dict[str, str]:
    config = cc.services.config
    return {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url, "DIRECTO_DATA_DIR": config.data_dir,
            "TWILIO_AUTH_TOKEN": config.twilio_auth_token}
