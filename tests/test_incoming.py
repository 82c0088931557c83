"""The incoming-call path end to end on the Flask app: signed webhooks in, TwiML parsed back as XML."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from directo.core.models import Call, Customer
from routing import agents as admin
from routing import roster
from routing.presence import presence

ANA, BEA, TOM = "ana", "bea", "tom"
CALLER = "+34600111222"


def add(services, identity: str, *langs: str, phone: str | None = None, status: str = "available") -> None:
    roster.add_agent(services, identity, identity.title(), list(langs) or ["es"], phone)
    admin.set_status(services, identity, status)
    time.sleep(0.01)  # distinct idle-since stamps, so "longest idle" is well defined


def dial_of(answer):
    dial = answer.xml.find("Dial")
    assert dial is not None, answer.body
    return dial


def client_identity(answer) -> str:
    return dial_of(answer).find("Client/Identity").text


def parameters(answer) -> dict[str, str]:
    return {p.get("name"): p.get("value") for p in dial_of(answer).findall("Client/Parameter")}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def complete_call(twilio, answer, sid: str, agent: str, talk: int = 60) -> None:
    """The agent answers, talks, hangs up (their leg ends); the caller's call ends."""
    dial = dial_of(answer)
    leg_url = dial.find("Client").get("statusCallback")
    twilio.agent_leg(leg_url, sid, "in-progress", f"client:{agent}")
    twilio.dial_complete(dial.get("action"), sid, "completed", duration=talk)
    twilio.agent_leg(leg_url, sid, "completed", f"client:{agent}")
    twilio.status(sid, "completed", duration=talk + 3)


def test_first_caller_goes_to_longest_idle_agent_with_no_menu(services, twilio) -> None:
    add(services, ANA)
    add(services, BEA)
    answer = twilio.incoming("CA001")
    assert answer.status == 200
    assert [child.tag for child in answer.xml] == ["Dial"], "no Say, Gather or Play before the person"
    dial = dial_of(answer)
    assert dial.get("answerOnBridge") == "true"
    assert dial.get("timeout") == "20"
    assert urlsplit(dial.get("action")).path == "/voice/dial-complete"
    assert client_identity(answer) == ANA
    client = dial.find("Client")
    assert client.get("statusCallbackEvent") == "initiated ringing answered completed"


def test_returning_caller_is_connected_to_previous_agent_even_if_another_idled_longer(services, twilio) -> None:
    add(services, ANA)
    add(services, BEA)
    first = twilio.incoming("CA001")
    assert client_identity(first) == ANA
    complete_call(twilio, first, "CA001", ANA)
    admin.set_status(services, ANA, "available")  # ready again before the wrap-up ends; now BEA idled longer
    second = twilio.incoming("CA002")
    assert client_identity(second) == ANA
    params = parameters(second)
    assert params["lastAgent"] == ANA
    assert params["previousCalls"] == "1"
    assert params["callerNumber"] == CALLER
    assert params["language"] == "es"
    assert params["callSid"] == "CA002"


def test_previous_agent_busy_means_longest_idle_agent(services, twilio) -> None:
    add(services, ANA)
    first = twilio.incoming("CA001")
    complete_call(twilio, first, "CA001", ANA)
    admin.set_status(services, ANA, "available")
    assert client_identity(twilio.incoming("CA099", from_="+34600999999")) == ANA  # a stranger takes ANA
    add(services, BEA)
    add(services, "carla")
    assert client_identity(twilio.incoming("CA002")) == BEA


def test_caller_language_is_remembered_and_matched(services, twilio) -> None:
    add(services, ANA, "es")
    add(services, TOM, "en")
    english = twilio.incoming("CA010", from_="+447700900123")  # a UK mobile: English
    assert client_identity(english) == TOM
    assert parameters(english)["language"] == "en"
    with services.db.session() as session:
        assert session.scalar(select(Customer.language).where(Customer.phone == "+447700900123")) == "en"


def test_no_answer_sets_agent_away_and_offers_the_next_agent(services, twilio) -> None:
    add(services, ANA)
    add(services, BEA)
    first = twilio.incoming("CA001")
    assert client_identity(first) == ANA
    retry = twilio.dial_complete(dial_of(first).get("action"), "CA001", "no-answer")
    assert client_identity(retry) == BEA
    assert "attempt=2" in dial_of(retry).get("action")
    assert presence(services).state(ANA)["status"] == "away"
    assert presence(services).state(BEA)["status"] == "reserved"


def test_tries_are_bounded_then_the_caller_is_told_politely(services, twilio) -> None:
    for name in ("a1", "a2", "a3", "a4"):
        add(services, name)
    answer = twilio.incoming("CA001")
    for _ in range(3):
        answer = twilio.dial_complete(dial_of(answer).get("action"), "CA001", "busy")
        if answer.xml.find("Dial") is None:
            break
    assert answer.xml.find("Dial") is None
    assert answer.xml.find("Say").get("language") == "es-ES"
    assert answer.xml[-1].tag == "Hangup"
    assert presence(services).state("a4")["status"] == "available", "bounded: the 4th agent was never rung"


def test_completed_call_puts_agent_in_wrapup_and_records_the_wait(services, twilio) -> None:
    add(services, ANA)
    answer = twilio.incoming("CA001")
    complete_call(twilio, answer, "CA001", ANA)
    live = presence(services).state(ANA)
    assert live["status"] == "wrapup"
    assert float(live["until"]) == pytest.approx(time.time() + 30, abs=5)
    with services.db.session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == "CA001"))
        assert call.outcome == "answered"
        assert call.agent.identity == ANA
        assert call.answered_at is not None and call.ended_at is not None
        assert 0 <= call.wait_seconds < 5
        assert session.scalar(select(Customer).where(Customer.phone == CALLER)).last_agent_id == call.agent_id


def test_agent_is_available_again_when_wrapup_ends(services, twilio, app) -> None:
    add(services, ANA)
    complete_call(twilio, twilio.incoming("CA001"), "CA001", ANA)
    assert twilio.incoming("CA002", from_="+34600000002").xml.find("Dial") is None  # ANA wraps up
    presence(services).transition(ANA, "wrapup", expect_call="", until=time.time() - 1)  # the wrap-up has ended
    assert client_identity(twilio.incoming("CA003", from_="+34600000003")) == ANA


def test_nobody_available_is_promised_a_callback_in_their_language(services, twilio) -> None:
    add(services, TOM, "en", status="away")
    answer = twilio.incoming("CA001", from_="+447700900123")
    says = answer.xml.findall("Say")
    assert {say.get("language") for say in says} == {"en-GB"}
    assert "call you back at this number within 5 minutes" in says[0].text
    assert [child.tag for child in answer.xml] == ["Say", "Say", "Record", "Say", "Hangup"]
    with services.db.session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == "CA001"))
        assert call.outcome == "callback" and call.callback_id is not None


def test_withheld_caller_with_nobody_free_is_told_to_call_again(services, twilio) -> None:
    answer = twilio.incoming("CA001", from_="anonymous")
    assert "call us again" in answer.xml.find("Say").text.lower() or "llámenos" in answer.xml.find("Say").text
    assert answer.xml.find("Record") is None


LONG_SIP = "sip:" + "reception-desk-" * 6 + "@pbx.branch-office.example.com;transport=tls"


@pytest.mark.parametrize("from_", [None, "", "anonymous", "Restricted", "+266696687", "not a number", "client:bob",
                                   LONG_SIP, "9" * 300])
def test_withheld_or_malformed_caller_still_reaches_a_person(services, twilio, from_) -> None:
    add(services, ANA)
    answer = twilio.incoming("CA001", from_=from_)
    assert client_identity(answer) == ANA
    assert parameters(answer)["callerNumber"] == "withheld"
    with services.db.session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == "CA001"))
        assert call.caller is None and call.language == "es"
        assert (call.from_raw or "") == (from_ or "")[:len(call.from_raw or "")], "kept as sent, shortened at most"


def test_caller_hanging_up_while_ringing_frees_the_agent_with_idle_time_kept(services, twilio) -> None:
    add(services, ANA)
    idle_since = presence(services).state(ANA)["since"]
    answer = twilio.incoming("CA001")
    twilio.dial_complete(dial_of(answer).get("action"), "CA001", "no-answer", CallStatus="completed")
    twilio.status("CA001", "completed")
    live = presence(services).state(ANA)
    assert live["status"] == "available" and live["since"] == idle_since
    with services.db.session() as session:
        assert session.scalar(select(Call.outcome).where(Call.call_sid == "CA001")) == "abandoned"


def test_agent_with_phone_is_dialled_as_a_number(services, twilio) -> None:
    add(services, ANA, phone="+34611222333")
    dial = dial_of(twilio.incoming("CA001"))
    assert dial.find("Number").text == "+34611222333"
    assert dial.find("Client") is None
