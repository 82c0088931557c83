"""Calls through the real twilio client: progress callbacks, outcomes, updates and call recordings."""

from __future__ import annotations

import io
import wave

import pytest
import requests
from twilio.twiml.voice_response import VoiceResponse

from standin import Answer, Busy, Fail, NoAnswer, StandIn

from .helpers import AUTH_TOKEN, CUSTOMER, OUR_NUMBER, App

ALL_EVENTS = ["initiated", "ringing", "answered", "completed"]


def twiml(*build: str) -> str:
    return "<Response>" + "".join(build) + "</Response>"


def test_created_call_is_answered_fetches_signed_twiml_and_reports_progress_in_order(tw: StandIn, app: App):
    tw.network.set_behaviour(CUSTOMER, Answer(after=2.0, talk=None))
    response = VoiceResponse()
    response.say("Hello from Directo")
    response.pause(length=3)
    response.hangup()
    app.on("/answer", response)

    created = tw.client().calls.create(
        to=CUSTOMER,
        from_=OUR_NUMBER,
        url=app.url("/answer"),
        status_callback=app.url("/status"),
        status_callback_event=ALL_EVENTS,
    )
    assert created.status == "queued" and created.sid.startswith("CA") and len(created.sid) == 34
    call = tw.network.call(created.sid).wait(10)

    assert all(r.signature_ok for r in app.requests)
    [voice] = app.received("/answer")
    assert voice["CallStatus"] == "in-progress"
    assert voice["Direction"] == "outbound-api"
    assert (voice["From"], voice["To"], voice["Caller"], voice["Called"]) == (OUR_NUMBER, CUSTOMER) * 2
    assert voice["ApiVersion"] == "2010-04-01" and voice["AccountSid"] == tw.account_sid
    statuses = app.received("/status")
    assert [s["CallStatus"] for s in statuses] == ["initiated", "ringing", "in-progress", "completed"]
    assert [s["SequenceNumber"] for s in statuses] == ["0", "1", "2", "3"]
    assert {s["CallbackSource"] for s in statuses} == {"call-progress-events"}
    say_seconds = len("Hello from Directo") * 0.07
    assert statuses[-1]["CallDuration"] == str(round(say_seconds + 3))
    fetched = tw.client().calls(created.sid).fetch()
    assert (fetched.status, fetched.duration, fetched.direction) == (
        "completed",
        str(round(say_seconds + 3)),
        "outbound-api",
    )
    assert [e["verb"] for e in call.find("verb")] == ["Say", "Pause", "Hangup"]


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [(NoAnswer(), "no-answer"), (Busy(after=1.0), "busy"), (Fail(), "failed"), (Answer(after=30.0), "no-answer")],
)
def test_unanswered_calls_end_with_their_status_and_never_fetch_twiml(tw: StandIn, app: App, behaviour, status):
    tw.network.set_behaviour(CUSTOMER, behaviour)
    created = tw.client().calls.create(
        to=CUSTOMER, from_=OUR_NUMBER, url=app.url("/answer"), timeout=15, status_callback=app.url("/status")
    )
    tw.network.call(created.sid).wait(10)
    assert app.received("/answer") == []
    [completed] = app.received("/status")
    assert (completed["CallStatus"], completed["CallDuration"]) == (status, "0")
    fetched = tw.client().calls(created.sid).fetch()
    assert (fetched.status, fetched.duration) == (status, None)


def test_update_with_twiml_redirects_and_status_completed_ends_a_live_call(tw: StandIn, app: App):
    tw.network.set_behaviour(CUSTOMER, Answer(after=1.0, talk=None))
    client = tw.client()
    created = client.calls.create(to=CUSTOMER, from_=OUR_NUMBER, twiml=twiml('<Pause length="600"/>'))
    tw.network.wait_until(lambda net: net.call(created.sid).status == "in-progress")

    client.calls(created.sid).update(
        twiml=twiml("<Say>Moving you</Say>", "<Redirect>" + app.url("/hold") + "</Redirect>")
    )
    app.on("/hold", twiml('<Pause length="600"/>'))
    tw.network.wait_until(lambda net: len(app.received("/hold")) == 1)
    updated = client.calls(created.sid).update(status="completed")
    assert updated.sid == created.sid
    call = tw.network.call(created.sid).wait(10)

    assert call.status == "completed" and call.hung_up_by == "api"
    assert [e["verb"] for e in call.find("verb")] == ["Pause", "Say", "Redirect", "Pause"]
    assert app.received("/hold")[0]["CallStatus"] == "in-progress"


def test_canceling_a_ringing_call(tw: StandIn):
    tw.network.set_behaviour(CUSTOMER, NoAnswer())
    client = tw.client()
    created = client.calls.create(to=CUSTOMER, from_=OUR_NUMBER, twiml=twiml("<Say>hi</Say>"))
    tw.network.wait_until(lambda net: net.call(created.sid).status == "ringing")
    client.calls(created.sid).update(status="canceled")
    assert tw.network.call(created.sid).wait(10).status == "canceled"


def test_call_recording_started_through_the_api_is_a_real_dual_channel_wav(tw: StandIn, app: App):
    tw.network.set_behaviour(CUSTOMER, Answer(after=1.0, talk=None))
    client = tw.client()
    created = client.calls.create(
        to=CUSTOMER, from_=OUR_NUMBER, twiml=twiml("<Say>This call is recorded</Say>", '<Pause length="600"/>')
    )
    tw.network.wait_until(lambda net: net.call(created.sid).status == "in-progress")
    recording = client.calls(created.sid).recordings.create(
        recording_status_callback=app.url("/recording"),
        recording_status_callback_event=["in-progress", "completed"],
        recording_channels="dual",
    )
    assert (recording.status, recording.source, recording.channels) == ("in-progress", "StartCallRecordingAPI", 2)
    started = tw.network.now
    tw.network.wait_until(lambda net: net.now > started + 10.5)  # ten whole seconds recorded, whatever the load
    client.calls(created.sid).update(status="completed")
    tw.network.call(created.sid).wait(10)

    events = app.received("/recording")
    assert [e["RecordingStatus"] for e in events] == ["in-progress", "completed"]
    done = events[-1]
    assert done["RecordingSid"] == recording.sid and done["RecordingSource"] == "StartCallRecordingAPI"
    assert done["RecordingChannels"] == "2" and int(done["RecordingDuration"]) >= 10
    listed = client.calls(created.sid).recordings.list()
    assert [r.sid for r in listed] == [recording.sid] and listed[0].status == "completed"
    media = requests.get(done["RecordingUrl"] + ".wav", auth=(tw.account_sid, AUTH_TOKEN), timeout=5)
    with wave.open(io.BytesIO(media.content)) as wav:
        assert wav.getnchannels() == 2 and wav.getframerate() == 8000
        assert round(wav.getnframes() / 8000) == int(done["RecordingDuration"])


def test_record_true_on_create_reports_the_recording_on_completion(tw: StandIn, app: App):
    tw.network.set_behaviour(CUSTOMER, Answer(after=1.0, talk=20.0))
    created = tw.client().calls.create(
        to=CUSTOMER,
        from_=OUR_NUMBER,
        twiml=twiml('<Pause length="600"/>'),
        record=True,
        status_callback=app.url("/status"),
        recording_status_callback=app.url("/recording"),
    )
    call = tw.network.call(created.sid).wait(10)
    [completed] = app.received("/status")
    [recording] = app.received("/recording")
    assert call.hung_up_by == "callee" and completed["CallDuration"] == "20"
    assert completed["RecordingSid"] == recording["RecordingSid"]
    assert recording["RecordingSource"] == "OutboundAPI" and recording["RecordingDuration"] == "20"


def test_calls_list_filters_and_pages(tw: StandIn):
    tw.network.set_behaviour(CUSTOMER, Busy(after=0.0))
    client = tw.client()
    sids = [client.calls.create(to=CUSTOMER, from_=OUR_NUMBER, twiml=twiml()).sid for _ in range(5)]
    for sid in sids:
        tw.network.call(sid).wait(10)
    listed = client.calls.list(to=CUSTOMER, status="busy", page_size=2)
    assert [c.sid for c in listed] == list(reversed(sids))
    assert client.calls.list(to="+34699999999") == []
