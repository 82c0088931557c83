"""SMS through the real twilio client: status progression, callbacks, refusals and undelivered messages."""

from __future__ import annotations

import pytest
from twilio.base.exceptions import TwilioRestException

from standin import StandIn

from .helpers import CUSTOMER, OUR_NUMBER, App


def test_message_goes_sent_then_delivered_and_calls_back_for_each(tw: StandIn, app: App):
    client = tw.client()
    created = client.messages.create(
        to=CUSTOMER, from_=OUR_NUMBER, body="Your agent will call you back", status_callback=app.url("/sms-status")
    )
    assert (created.status, created.direction, created.num_segments) == ("queued", "outbound-api", "1")
    assert created.sid.startswith("SM") and created.date_sent is None

    tw.network.wait_until(lambda net: len(app.received("/sms-status")) == 2)

    callbacks = app.received("/sms-status")
    assert [c["MessageStatus"] for c in callbacks] == ["sent", "delivered"]
    assert {c["MessageSid"] for c in callbacks} == {created.sid}
    assert callbacks[0]["SmsStatus"] == "sent" and callbacks[0]["To"] == CUSTOMER
    assert all(r.signature_ok for r in app.requests)
    message = tw.network.message(created.sid)
    assert message.statuses == ["queued", "sending", "sent", "delivered"]
    fetched = client.messages(created.sid).fetch()
    assert fetched.status == "delivered" and fetched.date_sent is not None
    assert [m.sid for m in client.messages.list(to=CUSTOMER)] == [created.sid]


def test_messaging_service_picks_the_sender(tw: StandIn):
    created = tw.client().messages.create(to=CUSTOMER, messaging_service_sid="MG" + "1" * 32, body="Hola ñandú ✓")
    assert created.status == "accepted" and created.from_ is None
    tw.network.wait_until(lambda net: net.message(created.sid).status == "delivered")
    assert tw.network.message(created.sid).from_ is not None


@pytest.mark.parametrize("status", [429, 503])
def test_refused_messages_raise_like_twilio_under_load(tw: StandIn, status: int):
    tw.faults.refuse_messages(count=2, status=status)
    client = tw.client()
    for _ in range(2):
        with pytest.raises(TwilioRestException) as refused:
            client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="hi")
        assert refused.value.status == status and refused.value.code == 20000 + status
    assert client.messages.create(to=CUSTOMER, from_=OUR_NUMBER, body="hi").status == "queued"


def test_undelivered_message_reports_the_carrier_error(tw: StandIn, app: App):
    tw.faults.undeliver_messages(count=1, status="undelivered", error_code=30003)
    created = tw.client().messages.create(
        to=CUSTOMER, from_=OUR_NUMBER, body="hi", status_callback=app.url("/sms-status")
    )
    tw.network.wait_until(lambda net: len(app.received("/sms-status")) == 2)
    callbacks = app.received("/sms-status")
    assert [c["MessageStatus"] for c in callbacks] == ["sent", "undelivered"]
    assert callbacks[-1]["ErrorCode"] == "30003"
    fetched = tw.client().messages(created.sid).fetch()
    assert (fetched.status, fetched.error_code) == ("undelivered", 30003)
