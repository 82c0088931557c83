"""REST errors answered as Twilio answers them, and runs that repeat exactly when seeded."""

from __future__ import annotations

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from standin import Answer, StandIn

from .helpers import AUTH_TOKEN, CUSTOMER, OUR_NUMBER, App


def test_wrong_credentials_get_401_with_error_20003(tw: StandIn):
    client = Client(tw.account_sid, "wrong-token")
    client.api.base_url = tw.base_url
    with pytest.raises(TwilioRestException) as refused:
        client.calls("CA" + "0" * 32).fetch()
    assert (refused.value.status, refused.value.code) == (401, 20003)
    assert requests.get(f"{tw.base_url}/2010-04-01/Accounts/{tw.account_sid}/Calls.json", timeout=5).status_code == 401


@pytest.mark.parametrize("to", ["12345", "+34 600 111 222", "+1234567", "+1234567890123456", "client:", "alice"])
def test_invalid_to_is_21211(tw: StandIn, to: str):
    with pytest.raises(TwilioRestException) as refused:
        tw.client().calls.create(to=to, from_=OUR_NUMBER, url="http://127.0.0.1:9/x")
    assert (refused.value.status, refused.value.code) == (400, 21211)


def test_valid_endpoints_are_accepted(tw: StandIn):
    for to in ("+34600111222", "client:alice", "sip:alice@example.com", "+12345678"):
        assert tw.client().calls.create(to=to, from_=OUR_NUMBER, twiml="<Response/>").to == to


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"From": OUR_NUMBER, "Url": "http://127.0.0.1:9/x"}, 21201),
        ({"To": CUSTOMER, "Url": "http://127.0.0.1:9/x"}, 21213),
        ({"To": CUSTOMER, "From": OUR_NUMBER}, 21205),
        ({"To": CUSTOMER, "From": OUR_NUMBER, "Url": "not a url"}, 21205),
    ],
)
def test_missing_or_bad_call_parameters(tw: StandIn, payload: dict[str, str], code: int):
    response = requests.post(
        f"{tw.base_url}/2010-04-01/Accounts/{tw.account_sid}/Calls.json",
        data=payload,
        auth=(tw.account_sid, AUTH_TOKEN),
        timeout=5,
    )
    assert response.status_code == 400
    assert response.json() == {
        "code": code,
        "message": response.json()["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": 400,
    }


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"From": OUR_NUMBER, "Body": "hi"}, 21604),
        ({"To": CUSTOMER, "From": OUR_NUMBER}, 21602),
        ({"To": CUSTOMER, "Body": "hi"}, 21603),
        ({"To": "0034600", "From": OUR_NUMBER, "Body": "hi"}, 21211),
    ],
)
def test_missing_or_bad_message_parameters(tw: StandIn, payload: dict[str, str], code: int):
    response = requests.post(
        f"{tw.base_url}/2010-04-01/Accounts/{tw.account_sid}/Messages.json",
        data=payload,
        auth=(tw.account_sid, AUTH_TOKEN),
        timeout=5,
    )
    assert (response.status_code, response.json()["code"]) == (400, code)


def test_unknown_sids_are_404_with_error_20404(tw: StandIn):
    client = tw.client()
    for fetch in (
        client.calls("CA" + "f" * 32).fetch,
        client.messages("SM" + "f" * 32).fetch,
        client.recordings("RE" + "f" * 32).fetch,
        client.calls("CA" + "f" * 32).recordings("RE" + "f" * 32).fetch,
    ):
        with pytest.raises(TwilioRestException) as missing:
            fetch()
        assert (missing.value.status, missing.value.code) == (404, 20404)
    other_account = f"{tw.base_url}/2010-04-01/Accounts/AC{'1' * 32}/Calls.json"
    assert requests.get(other_account, auth=(tw.account_sid, AUTH_TOKEN), timeout=5).status_code == 404


def test_ended_calls_cannot_be_redirected_or_recorded(tw: StandIn):
    client = tw.client()
    created = client.calls.create(to=CUSTOMER, from_=OUR_NUMBER, twiml="<Response><Reject/></Response>")
    tw.network.call(created.sid).wait(10)
    for action in (
        lambda: client.calls(created.sid).update(twiml="<Response/>"),
        lambda: client.calls(created.sid).recordings.create(),
    ):
        with pytest.raises(TwilioRestException) as refused:
            action()
        assert (refused.value.status, refused.value.code) == (400, 21220)


def test_deleted_recordings_are_gone(tw: StandIn, app: App):
    tw.network.set_behaviour(CUSTOMER, Answer(speech_seconds=2.0, finish_key="#"))
    app.on("/incoming", '<Response><Record action="/done"/></Response>')
    app.on("/done", "<Response><Hangup/></Response>")
    tw.network.place_inbound_call(CUSTOMER, OUR_NUMBER, app.url("/incoming")).wait(10)
    sid = app.received("/done")[0]["RecordingSid"]
    client = tw.client()
    assert client.recordings(sid).delete() is True
    with pytest.raises(TwilioRestException):
        client.recordings(sid).fetch()
    assert tw.recordings == []


def run_scripted_call(app: App) -> tuple[list[tuple[str, float, str | None]], str]:
    with StandIn(auth_token=AUTH_TOKEN, time_scale=0.002, seed=42) as tw:
        tw.network.set_behaviour("client:alice", Answer(after=4.0, talk=12.0))
        tw.network.set_behaviour("client:bob", Answer(after=4.0, talk=30.0))
        call = tw.network.place_inbound_call(CUSTOMER, OUR_NUMBER, app.url("/incoming"))
        call.wait(10)
        winner = tw.network.call(call.find("dial")[0]["DialCallSid"])
        return [(e.kind, round(e.at, 6), e.sid) for e in call.events], winner.to


def test_seeded_runs_repeat_exactly(app: App):
    app.on(
        "/incoming",
        "<Response><Say>Hello</Say><Dial><Client>alice</Client><Client>bob</Client></Dial>"
        "<Pause length='2'/></Response>",
    )
    (first, first_winner), (second, second_winner) = run_scripted_call(app), run_scripted_call(app)
    assert first == second
    # both agents answer at the same virtual instant: the one dialled first wins, every time
    assert first_winner == second_winner == "client:alice"
