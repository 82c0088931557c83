"""Inbound calls running the app's TwiML: Dial, Record, Gather, Say/Play/Pause/Redirect/Hangup, errors."""

from __future__ import annotations

import io
import time
import wave

import pytest
import requests
from flask import Response
from twilio.twiml.voice_response import Dial, VoiceResponse

from standin import Answer, Busy, Fail, NoAnswer, StandIn
from standin.audio import ffmpeg_executable, silence, wav

from .helpers import AUTH_TOKEN, CUSTOMER, OUR_NUMBER, App

AGENT = "client:alice"


def inbound(tw: StandIn, app: App, path: str = "/incoming", **kwargs):
    return tw.network.place_inbound_call(
        CUSTOMER, OUR_NUMBER, app.url(path), status_callback=app.url("/status"), **kwargs
    )


def test_dial_client_forwards_parameters_and_reports_the_bridge(tw: StandIn, app: App):
    tw.network.set_behaviour(AGENT, Answer(after=3.0, talk=60.0))
    response = VoiceResponse()
    dial = Dial(action="/dial-done", timeout=20, answer_on_bridge=True)
    client = dial.client(status_callback="/agent-status", status_callback_event="initiated ringing answered completed")
    client.identity("alice")
    client.parameter(name="queue", value="sales")
    client.parameter(name="ticket", value="T-42")
    response.append(dial)
    app.on("/incoming", response)
    app.on("/dial-done", "<Response><Say>Thanks for calling</Say></Response>")

    call = inbound(tw, app).wait(10)

    [agent_leg] = tw.network.legs_to(AGENT)
    assert agent_leg.custom_parameters == {"queue": "sales", "ticket": "T-42"}
    assert call.find("client.parameters", sid=agent_leg.sid)[0]["parameters"] == {"queue": "sales", "ticket": "T-42"}
    assert (agent_leg.parent, agent_leg.direction, agent_leg.from_) == (call, "outbound-dial", CUSTOMER)
    [action] = app.received("/dial-done")
    assert action["DialCallStatus"] == "completed" and action["DialBridged"] == "true"
    assert action["DialCallSid"] == agent_leg.sid and action["DialCallDuration"] == "60"
    assert action["CallStatus"] == "in-progress"
    agent_events = app.received("/agent-status")
    assert [e["CallStatus"] for e in agent_events] == ["initiated", "ringing", "in-progress", "completed"]
    assert {e["ParentCallSid"] for e in agent_events} == {call.sid}
    assert {e["Direction"] for e in agent_events} == {"outbound-dial"}
    # answerOnBridge: the caller's leg is answered only when the agent answers, 3 s in
    [completed] = app.received("/status")
    assert completed["CallDuration"] == str(60 + round(len("Thanks for calling") * 0.07))
    assert call.answered_at == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("behaviour", "dial_status"),
    [(NoAnswer(), "no-answer"), (Busy(after=2.0), "busy"), (Fail(), "failed")],
)
def test_dial_action_reports_why_nobody_answered(tw: StandIn, app: App, behaviour, dial_status):
    tw.network.set_behaviour(AGENT, behaviour)
    response = VoiceResponse()
    response.dial(action="/dial-done", timeout=10).client("alice")
    app.on("/incoming", response)
    app.on("/dial-done", "<Response><Hangup/></Response>")

    call = inbound(tw, app).wait(10)

    [action] = app.received("/dial-done")
    assert action["DialCallStatus"] == dial_status and action["DialBridged"] == "false"
    assert "DialCallDuration" not in action
    [leg] = tw.network.legs_to(AGENT)
    assert leg.status == dial_status
    if dial_status == "no-answer":
        assert leg.ended_at - leg.created_at == pytest.approx(10.0)
    assert call.status == "completed"


def test_parallel_ringing_first_to_answer_wins(tw: StandIn, app: App):
    tw.network.set_behaviour("+34600000001", Answer(after=5.0))
    tw.network.set_behaviour("client:bob", Answer(after=2.0, talk=30.0))
    tw.network.set_behaviour("+34600000003", NoAnswer())
    response = VoiceResponse()
    dial = Dial(action="/dial-done")
    dial.number("+34600000001")
    dial.client("bob")
    dial.number("+34600000003")
    response.append(dial)
    app.on("/incoming", response)

    call = inbound(tw, app).wait(10)

    legs = {leg.to: leg for leg in call.legs[1:]}
    assert legs["client:bob"].status == "completed" and legs["client:bob"].duration == 30
    assert legs["+34600000001"].status == "canceled" and legs["+34600000003"].status == "canceled"
    assert [legs[n].ended_at for n in ("+34600000001", "+34600000003")] == pytest.approx([2.0, 2.0])
    [action] = app.received("/dial-done")
    assert (action["DialCallSid"], action["DialCallDuration"]) == (legs["client:bob"].sid, "30")


def test_dial_without_action_continues_with_the_next_verb(tw: StandIn, app: App):
    tw.network.set_behaviour("+34600000001", Busy())
    app.on("/incoming", "<Response><Dial>+34600000001</Dial><Say>Nobody is free</Say></Response>")
    call = inbound(tw, app).wait(10)
    assert [e["verb"] for e in call.find("verb")] == ["Dial", "Say"]
    assert call.find("dial")[0]["DialCallStatus"] == "busy"


def test_caller_hanging_up_during_dial_cancels_the_agents_and_still_reports_the_action(tw: StandIn, app: App):
    tw.network.set_behaviour(AGENT, NoAnswer())
    response = VoiceResponse()
    response.dial(action="/dial-done", timeout=30).client("alice")
    app.on("/incoming", response)

    call = inbound(tw, app, caller_hangup_after=8.0).wait(10)

    [action] = app.received("/dial-done")
    assert (action["CallStatus"], action["DialCallStatus"]) == ("completed", "canceled")
    [leg] = tw.network.legs_to(AGENT)
    assert leg.status == "canceled" and call.hung_up_by == "caller"
    assert call.ended_at == pytest.approx(8.0)


def test_agent_hangup_from_the_test_ends_the_bridge(tw: StandIn, app: App):
    tw.network.set_behaviour(AGENT, Answer(after=1.0, talk=None))
    response = VoiceResponse()
    response.dial(action="/dial-done").client("alice")
    app.on("/incoming", response)
    call = inbound(tw, app)
    tw.network.wait_until(lambda net: any(leg.status == "in-progress" for leg in net.legs_to(AGENT)))
    tw.network.wait_until(lambda net: net.now > 20)
    tw.network.hangup(tw.network.legs_to(AGENT)[0].sid)
    call.wait(10)
    [action] = app.received("/dial-done")
    assert action["DialCallStatus"] == "completed" and int(action["DialCallDuration"]) >= 19


@pytest.mark.parametrize("allow_incoming_while_busy", [False, True])
def test_a_softphone_on_a_call_ignores_a_second_one_as_the_voice_sdk_does(tw: StandIn, app: App,
                                                                          allow_incoming_while_busy: bool):
    tw.network.set_behaviour(AGENT, Answer(after=1.0, talk=60.0))
    tw.network.allow_incoming_while_busy(AGENT, allow_incoming_while_busy)
    response = VoiceResponse()
    response.dial(action="/dial-done", timeout=10).client("alice")
    app.on("/incoming", response)
    first = inbound(tw, app)
    tw.network.wait_until(lambda net: any(leg.status == "in-progress" for leg in net.legs_to(AGENT)))
    second = tw.network.place_inbound_call("+34600999888", OUR_NUMBER, app.url("/incoming"))
    second.wait(10)
    first.wait(10)
    statuses = [action["DialCallStatus"] for action in app.received("/dial-done")]
    if allow_incoming_while_busy:
        assert statuses == ["completed", "completed"] and not second.find("client.ignored")
    else:  # nothing rings on the agent's screen: Twilio hears no answer until the Dial's timeout
        assert statuses[0] == "no-answer" and statuses[1] == "completed"
        [ignored] = second.find("client.ignored")
        assert ignored["active"] == tw.network.legs_to(AGENT)[0].sid


def test_record_posts_the_action_and_the_recording_is_a_real_wav(tw: StandIn, app: App):
    tw.network.set_behaviour(CUSTOMER, Answer(speech_seconds=4.0, finish_key="#"))
    response = VoiceResponse()
    response.say("Leave a message after the beep", language="es-ES")
    response.record(action="/recorded", max_length=30, finish_on_key="#", recording_status_callback="/recording-status")
    app.on("/incoming", response)
    app.on("/recorded", "<Response><Say>Thanks</Say></Response>")

    call = inbound(tw, app).wait(10)

    [action] = app.received("/recorded")
    assert (action["RecordingDuration"], action["Digits"]) == ("4", "#")
    [status] = app.received("/recording-status")
    assert status["RecordingStatus"] == "completed" and status["RecordingSid"] == action["RecordingSid"]
    assert status["RecordingSource"] == "RecordVerb" and status["RecordingUrl"] == action["RecordingUrl"]
    client = tw.client()
    fetched = client.recordings(action["RecordingSid"]).fetch()
    assert (fetched.call_sid, fetched.status, fetched.duration) == (call.sid, "completed", "4")
    media_url = f"{client.api.base_url}/2010-04-01/Accounts/{tw.account_sid}/Recordings/{fetched.sid}"
    assert requests.get(media_url, timeout=5).status_code == 401
    for suffix in ("", ".wav"):
        media = requests.get(media_url + suffix, auth=(tw.account_sid, AUTH_TOKEN), timeout=5)
        assert media.headers["Content-Type"] == "audio/x-wav"
        with wave.open(io.BytesIO(media.content)) as recorded:
            assert recorded.getnframes() / recorded.getframerate() == pytest.approx(4.0)
            assert any(recorded.readframes(8000))
    mp3 = requests.get(media_url + ".mp3", auth=(tw.account_sid, AUTH_TOKEN), timeout=30)
    if ffmpeg_executable() is None:
        assert mp3.status_code == 404
    else:
        assert mp3.status_code == 200 and mp3.headers["Content-Type"] == "audio/mpeg"
        assert mp3.content[:3] == b"ID3" or mp3.content[0] == 0xFF


def test_record_uses_the_audio_a_behaviour_provides(tw: StandIn, app: App):
    voice = wav(silence(0.5).__class__("h", [1000, -1000] * 12000))  # 3 s of a buzz
    tw.network.set_behaviour(CUSTOMER, Answer(audio=voice, hangup_after_speech=True))
    app.on("/incoming", '<Response><Record action="/recorded"/></Response>')
    call = inbound(tw, app).wait(10)
    [action] = app.received("/recorded")
    assert (action["Digits"], action["RecordingDuration"], action["CallStatus"]) == ("hangup", "3", "completed")
    assert tw.network.recording(action["RecordingSid"]).media == voice
    assert call.hung_up_by == "caller"


def test_empty_recording_is_absent_and_moves_to_the_next_verb(tw: StandIn, app: App):
    tw.network.set_behaviour(CUSTOMER, Answer(speech_seconds=0.0))
    response = VoiceResponse()
    response.record(
        action="/recorded",
        timeout=3,
        recording_status_callback="/recording-status",
        recording_status_callback_event="completed absent",
    )
    response.say("We did not get your message")
    app.on("/incoming", response)

    call = inbound(tw, app).wait(10)

    assert app.received("/recorded") == []
    [status] = app.received("/recording-status")
    assert (status["RecordingStatus"], status["ErrorCode"]) == ("absent", "16101")
    assert [e["verb"] for e in call.find("verb")] == ["Record", "Say"]


def test_corrupt_recording_media(tw: StandIn, app: App):
    tw.faults.corrupt_recording_media(count=1, kind="truncated")
    tw.faults.corrupt_recording_media(count=1, kind="garbage")
    tw.network.set_behaviour(CUSTOMER, Answer(speech_seconds=3.0, finish_key="#"))
    app.on("/incoming", '<Response><Record action="/one"/></Response>')
    app.on("/one", '<Response><Record action="/two"/></Response>')
    app.on("/two", '<Response><Record action="/three"/></Response>')
    app.on("/three", "<Response><Hangup/></Response>")
    inbound(tw, app).wait(10)
    media = [tw.network.recording(app.received(p)[0]["RecordingSid"]).media for p in ("/one", "/two", "/three")]
    with pytest.raises((wave.Error, EOFError)):
        wave.open(io.BytesIO(media[1])).readframes(1)
    with wave.open(io.BytesIO(media[0])) as truncated:
        assert len(truncated.readframes(truncated.getnframes())) < truncated.getnframes() * 2
    with wave.open(io.BytesIO(media[2])) as intact:
        assert intact.getnframes() == 3 * 8000


def test_say_play_pause_redirect_hangup_take_their_time(tw: StandIn, app: App):
    two_seconds = wav(silence(2.0))
    app.on("/hold.wav", lambda _form: Response(two_seconds, mimetype="audio/x-wav"))
    first = VoiceResponse()
    first.say("Hola", language="es-ES", loop=2)
    first.play("/hold.wav", loop=2)
    first.pause(length=3)
    first.redirect("second?step=2", method="GET")
    first.say("never said")
    app.on("/incoming", first)
    app.on("/second", "<Response><Hangup/><Say>never said either</Say></Response>")

    call = inbound(tw, app).wait(10)

    verbs = call.find("verb")
    assert [e["verb"] for e in verbs] == ["Say", "Play", "Pause", "Redirect", "Hangup"]
    say = 2 * 0.5  # "Hola" is shorter than the shortest utterance
    assert [e.at for e in verbs] == pytest.approx([0.0, say, say + 4.0, say + 7.0, say + 7.0])
    [redirected] = app.received("/second")
    assert redirected["step"] == "2" and redirected["CallSid"] == call.sid
    assert len(app.received("/hold.wav")) == 1  # media is cached, like Twilio does
    assert call.duration == round(say + 7.0)


def test_gather_sends_the_digits_the_caller_keys(tw: StandIn, app: App):
    tw.network.set_behaviour(CUSTOMER, Answer(digits=("42#",)))
    response = VoiceResponse()
    response.gather(action="/menu", num_digits=4).say("Enter your customer number")
    app.on("/incoming", response)
    app.on("/menu", "<Response><Hangup/></Response>")
    inbound(tw, app).wait(10)
    [menu] = app.received("/menu")
    assert (menu["Digits"], menu["FinishedOnKey"]) == ("42", "#")


def test_reject_leaves_the_call_unanswered(tw: StandIn, app: App):
    app.on("/incoming", '<Response><Reject reason="busy"/></Response>')
    call = inbound(tw, app).wait(10)
    assert call.status == "busy" and call.answered_at is None
    assert app.received("/status")[0]["CallStatus"] == "busy"


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (Response("boom", status=500), 11200),
        (Response("this is not xml <", mimetype="text/xml"), 12100),
        (Response('{"json": true}', mimetype="application/json"), 12300),
    ],
)
def test_broken_webhook_is_an_application_error_that_ends_the_call(tw: StandIn, app: App, answer, code):
    app.on("/incoming", lambda _form: answer)
    call = inbound(tw, app).wait(10)
    assert [error["code"] for error in call.errors] == [code]
    assert call.status == "completed" and call.find("error")[0]["url"] == app.url("/incoming")


def test_unreachable_webhook_and_fallback_url(tw: StandIn, app: App):
    app.on("/fallback", "<Response><Say>Sorry, try later</Say></Response>")
    call = tw.network.place_inbound_call(
        CUSTOMER, OUR_NUMBER, "http://127.0.0.1:9/nothing-listens", fallback_url=app.url("/fallback")
    ).wait(10)
    assert call.errors[0]["code"] == 11205
    [fallback] = app.received("/fallback")
    assert (fallback["ErrorCode"], fallback["ErrorUrl"]) == ("11205", "http://127.0.0.1:9/nothing-listens")


def test_webhooks_signed_with_another_token_are_rejected_by_the_app(app: App):
    with StandIn(auth_token=AUTH_TOKEN, webhook_auth_token="not-the-apps-token", time_scale=0.005) as other:
        app.on("/incoming", "<Response><Say>hi</Say></Response>")
        call = inbound(other, app).wait(10)
    assert call.errors[0]["code"] == 11200 and app.requests[0].signature_ok is False


def test_invalid_twiml_is_reported_and_skipped(tw: StandIn, app: App):
    app.on("/incoming", '<Response><Say colour="blue">hi</Say><Dance/><Enqueue>support</Enqueue></Response>')
    call = inbound(tw, app).wait(10)
    assert [e["message"] for e in call.twiml_errors] == [
        "<Say> has no attribute 'colour'",
        "<Dance> is not a TwiML element",
    ]
    assert call.warnings == ["<Enqueue> is not simulated; skipped"]
    assert call.status == "completed"


def test_slow_webhook_times_out_as_error_11205(app: App):
    app.on("/incoming", lambda _form: time.sleep(0.5) or "<Response><Say>too late</Say></Response>")
    with StandIn(auth_token=AUTH_TOKEN, time_scale=0.005, webhook_timeout=0.2) as slow:
        call = inbound(slow, app).wait(10)
    assert call.errors[0]["code"] == 11205 and call.find("verb") == []


def test_rest_redirect_during_record_keeps_the_recording_and_skips_the_action(tw: StandIn, app: App):
    tw.network.set_behaviour(CUSTOMER, Answer(speech_seconds=30.0))
    app.on("/incoming", '<Response><Record action="/recorded" timeout="0"/></Response>')
    call = inbound(tw, app)
    tw.network.wait_until(lambda net: net.now > 10)
    tw.client().calls(call.sid).update(twiml="<Response><Say><prosody rate='slow'>Bye</prosody></Say></Response>")
    call.wait(10)
    assert app.received("/recorded") == [] and call.twiml_errors == []
    [recording] = tw.recordings
    assert recording.status == "completed" and recording.duration >= 10
    assert call.find("verb")[-1]["verb"] == "Say"
