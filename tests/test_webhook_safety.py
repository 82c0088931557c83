"""Forged, unsigned, replayed and unknown webhooks: clear answers, and nothing changes that should not."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from conftest import ACCOUNT_SID, TwilioWebhooks
from rq import SimpleWorker
from sqlalchemy import delete, func, select, update
from test_incoming import add, client_identity, complete_call, dial_of
from twilio.request_validator import RequestValidator

from directo.core import unit_of_work as receipts
from directo.core.jobs import use_services
from directo.core.models import Call, CallEvent, WebhookReceipt
from routing.presence import presence
from voice import create_app


def calls_count(services) -> int:
    with services.db.session() as session:
        return session.scalar(select(func.count()).select_from(Call))


def test_unsigned_webhook_is_refused_and_changes_nothing(services, twilio) -> None:
    add(services, "ana")
    answer = twilio.post("/voice/incoming", {"CallSid": "CA1", "From": "+34600111222"}, signature="")
    assert answer.status == 403
    assert calls_count(services) == 0
    assert presence(services).state("ana")["status"] == "available"


def test_forged_signature_is_refused(services, client) -> None:
    add(services, "ana")
    forger = TwilioWebhooks(client, auth_token="not-the-real-token")
    assert forger.incoming("CA1").status == 403
    assert calls_count(services) == 0


def test_tampered_parameter_is_refused(services, twilio) -> None:
    params = {"CallSid": "CA1", "From": "+34600111222", "AccountSid": ACCOUNT_SID}
    signature = RequestValidator("test-auth-token-0123456789abcdef").compute_signature(
        "http://localhost/voice/incoming", params
    )
    assert twilio.post("/voice/incoming", {**params, "From": "+34699999999"}, signature=signature).status == 403


def test_parameters_twilio_adds_without_notice_are_covered_by_the_signature(services, twilio) -> None:
    add(services, "ana")
    answer = twilio.incoming("CA1", StirVerstat="TN-Validation-Passed-A", CallToken="%7B%22x%22%3A1%7D")
    assert answer.status == 200 and client_identity(answer) == "ana"


def test_behind_a_proxy_the_forwarded_public_url_is_what_twilio_signed(config, clean) -> None:
    app = create_app(replace(config, trusted_proxies=1))  # TRUSTED_PROXIES=1: one proxy in front, trusted
    client = app.test_client()
    services = app.extensions["directo"]
    add(services, "ana")
    params = {"CallSid": "CA1", "From": "+34600111222", "AccountSid": ACCOUNT_SID}
    public = "https://directo.example.com/voice/incoming"
    signature = RequestValidator("test-auth-token-0123456789abcdef").compute_signature(public, params)
    response = client.post(
        "/voice/incoming",
        data=params,
        headers={"X-Twilio-Signature": signature, "X-Forwarded-Proto": "https", "X-Forwarded-Host":
                 "directo.example.com"},
    )
    services.close()
    assert response.status_code == 200


def test_public_base_url_is_used_for_checking_and_for_callback_urls(config, clean) -> None:
    app = create_app(replace(config, public_base_url="https://cc.example.org"))
    try:
        services = app.extensions["directo"]
        add(services, "ana")
        public = TwilioWebhooks(app.test_client(), base="https://cc.example.org")
        answer = public.incoming("CA1")
        assert answer.status == 200
        assert dial_of(answer).get("action").startswith("https://cc.example.org/voice/dial-complete")
        local = TwilioWebhooks(app.test_client())
        assert local.incoming("CA2").status == 403
    finally:
        app.extensions["directo"].close()


def test_redelivered_incoming_webhook_replays_the_same_answer_and_reserves_no_one_else(services, twilio) -> None:
    add(services, "ana")
    add(services, "bea")
    first = twilio.incoming("CA1")
    again = twilio.incoming("CA1")
    assert again.status == 200 and again.body == first.body
    assert calls_count(services) == 1
    assert presence(services).state("bea")["status"] == "available"


def test_redelivered_dial_complete_does_not_ring_a_third_agent(services, twilio) -> None:
    for name in ("ana", "bea", "carla"):
        add(services, name)
    action = dial_of(twilio.incoming("CA1")).get("action")
    first = twilio.dial_complete(action, "CA1", "no-answer")
    second = twilio.dial_complete(action, "CA1", "no-answer")
    assert client_identity(first) == client_identity(second) == "bea"
    assert presence(services).state("carla")["status"] == "available"
    with services.db.session() as session:
        kinds = session.scalars(select(CallEvent.kind).order_by(CallEvent.id)).all()
    assert kinds.count("agent-reserved") == 2


@pytest.mark.parametrize("path", ["/voice/dial-complete?attempt=1", "/voice/status", "/voice/agent-leg"])
def test_unknown_call_sid_gets_valid_twiml_not_an_error(twilio, path) -> None:
    answer = twilio.post(path, {"CallSid": "CAunknown", "ParentCallSid": "CAunknown", "CallStatus": "completed",
                                "DialCallStatus": "completed"})
    assert answer.status == 200
    assert answer.xml.tag == "Response"


def test_missing_call_sid_is_a_clear_client_error(twilio) -> None:
    answer = twilio.post("/voice/incoming", {"From": "+34600111222"})
    assert answer.status == 400
    assert "CallSid" in answer.body


def test_receipts_older_than_the_retention_are_pruned_and_the_calls_stay(services, twilio, monkeypatch) -> None:
    """Receipts guard against redeliveries, which come within seconds; kept for ever they would only grow."""
    add(services, "ana")
    for n in range(6):
        sid = f"CA{n}"
        assert client_identity(twilio.incoming(sid, from_=f"+3460000000{n}")) == "ana"
        twilio.status(sid, "completed")  # the caller hung up while it rang: ana is free for the next one
    with services.db.session() as session:
        old = datetime.now(UTC) - timedelta(days=services.config.webhook_receipt_days, minutes=1)
        session.execute(update(WebhookReceipt).where(WebhookReceipt.call_sid.in_(["CA0", "CA1", "CA2", "CA3"]))
                        .values(received_at=old))
        events_before = session.scalar(select(func.count()).select_from(CallEvent))
    monkeypatch.setattr(receipts, "PRUNE_BATCH", 3)  # several batches, as on a database with months of calls
    use_services(services)
    job = services.queue.enqueue(receipts.prune_old_receipts)
    SimpleWorker([services.queue], connection=services.redis).work(burst=True)
    assert job.return_value() == 8  # incoming + status for each of the four old calls
    with services.db.session() as session:
        left = set(session.scalars(select(WebhookReceipt.call_sid)))
        assert left == {"CA4", "CA5"}
        assert session.scalar(select(func.count()).select_from(Call)) == 6
        assert session.scalar(select(func.count()).select_from(CallEvent)) == events_before
    assert client_identity(twilio.incoming("CA5", from_="+34600000005")) == "ana"
    assert calls_count(services) == 6, "a recent redelivery is still answered from its receipt"


def test_a_replay_after_its_receipts_were_pruned_changes_nothing(services, twilio) -> None:
    """A captured, correctly signed request replayed days later: no agent rings, nothing is recorded twice."""
    add(services, "ana")
    add(services, "bea")
    answer = twilio.incoming("CA1")
    complete_call(twilio, answer, "CA1", client_identity(answer))
    with services.db.session() as session:
        session.execute(delete(WebhookReceipt))  # what pruning does, days later
    before = {identity: state["status"] for identity, state in presence(services).states().items()}
    assert twilio.incoming("CA1").xml.find("Dial") is None
    assert twilio.dial_complete(dial_of(answer).get("action"), "CA1", "no-answer").xml.find("Dial") is None
    assert {identity: state["status"] for identity, state in presence(services).states().items()} == before
    assert calls_count(services) == 1
