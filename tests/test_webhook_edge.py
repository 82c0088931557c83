"""The webhooks' edge: nothing is read, said or changed before the signature is checked (issue 14, point 1), bodies
are bounded (point 2), and the fields of a signed request are cleaned and bounded before the app uses them
(point 14), so odd values still leave a call on record on both databases."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import requests
from conftest import ACCOUNT_SID, TwilioWebhooks, worker_env
from drills import free_port
from sqlalchemy import func, select
from test_incoming import add, client_identity, dial_of

from directo.core.models import Call, CallEvent
from directo.core.urls import TWILIO_ROUTES
from routing.presence import presence
from voice import create_app
from voice.signature import WEBHOOK_MAX_BYTES
from voice.twilio_form import SID_LENGTH

AGENT_PHONE = "+34611222333"
FALLBACK = "+34910000099"
WEBHOOKS = sorted(rule.rule for rule in TWILIO_ROUTES.iter_rules() if rule.rule.startswith("/voice/"))


@pytest.fixture
def exposed(config, clean):
    """An app with a free agent reached on their phone and a FALLBACK_NUMBER: what a rescue would reveal."""
    app = create_app(replace(config, fallback_number=FALLBACK))
    services = app.extensions["directo"]
    add(services, "ana", phone=AGENT_PHONE)
    try:
        yield app, services
    finally:
        services.close()


def _nothing_revealed_or_changed(services, response) -> None:
    body = response.get_data(as_text=True)
    assert response.status_code in (403, 413), (response.status_code, body)
    for secret in ("ana", AGENT_PHONE, FALLBACK, "<Dial", "<Response"):
        assert secret not in body, f"{secret!r} revealed to an unverified request: {body}"
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 0
    assert presence(services).state("ana")["status"] == "available"


@pytest.mark.parametrize("path", WEBHOOKS)
def test_an_unsigned_form_too_many_parts_to_read_reveals_and_changes_nothing(exposed, path) -> None:
    """Over 1,000 multipart parts made reading the form fail inside the signature check: the rescue answered
    /voice/incoming with every free agent's identity and phone number."""
    app, services = exposed
    parts = {f"p{n}": "x" for n in range(1001)} | {"CallSid": "CA1", "From": "+34600111222"}
    response = app.test_client().post(path + "?attempt=1&callback=1&complaint=1", data=parts,
                                      content_type="multipart/form-data", headers={"X-Twilio-Signature": "Zm9yZ2Vk"})
    _nothing_revealed_or_changed(services, response)


@pytest.mark.parametrize("body", [b"--nope\r\nContent-Disposition: form-data\r\n\r\n", b"\xff\xfe" * 100, b""],
                         ids=["truncated", "not-utf8", "empty"])
def test_an_unreadable_multipart_body_is_refused_without_a_word(exposed, body) -> None:
    app, services = exposed
    response = app.test_client().post("/voice/incoming", data=body,
                                      content_type="multipart/form-data; boundary=nope",
                                      headers={"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"})
    _nothing_revealed_or_changed(services, response)


def test_a_webhook_body_over_the_limit_is_413_signed_or_not(exposed) -> None:
    app, services = exposed
    big = {"CallSid": "CA1", "From": "+34600111222", "Padding": "x" * WEBHOOK_MAX_BYTES}
    twilio = TwilioWebhooks(app.test_client())
    response = app.test_client().post("/voice/incoming", data=big)
    _nothing_revealed_or_changed(services, response)
    assert response.status_code == 413
    assert twilio.post("/voice/incoming", big).status == 413, "even signed: Twilio never sends this much"
    one_large_part = app.test_client().post("/voice/incoming", data=big, content_type="multipart/form-data")
    assert one_large_part.status_code == 413
    assert dial_of(twilio.incoming("CA2")).find("Number").text == AGENT_PHONE, "an ordinary webhook goes through"


def test_the_rescue_still_answers_a_signed_request_that_fails(exposed, monkeypatch) -> None:
    """Point 1 must not take the rescue away from Twilio itself: a verified incoming call that fails is put
    through to the free agent and the fallback number."""
    app, services = exposed
    import voice.webhooks

    def broken(*_args, **_kwargs):
        raise RuntimeError("the database is gone")

    monkeypatch.setattr(voice.webhooks, "plan_incoming", broken)
    answer = TwilioWebhooks(app.test_client()).incoming("CA1")
    assert answer.status == 200
    dial = dial_of(answer)
    assert [n.text for n in dial.findall("Number")] == [AGENT_PHONE, FALLBACK]


def _call(services, sid: str) -> Call | None:
    with services.db.session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == sid))
        if call is not None:
            session.expunge(call)
        return call


@pytest.mark.parametrize("sid", ["CA" + "a" * 30 + "\x00" + "b", "CA" + "7" * 63, "CA" + "9" * 1000],
                         ids=["nul", "65-chars", "1002-chars"])
def test_an_odd_call_sid_still_leaves_a_call_record(services, twilio, sid) -> None:
    """On PostgreSQL a NUL, or a CallSid over its 64-character column, failed the insert: no record at all."""
    add(services, "ana")
    first = twilio.incoming(sid)
    assert client_identity(first) == "ana"
    stored = dial_of(first).find("Client/Parameter[@name='callSid']").get("value")
    assert "\x00" not in stored and len(stored) <= SID_LENGTH
    assert _call(services, stored) is not None, "the call is on record"
    assert twilio.incoming(sid).body == first.body, "a redelivery is recognised as the same call"
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 1


def test_two_long_call_sids_sharing_a_prefix_stay_two_calls(services, twilio) -> None:
    add(services, "ana")
    add(services, "bea")
    twilio.incoming("CA" + "5" * 100 + "1", from_="+34600000001")
    twilio.incoming("CA" + "5" * 100 + "2", from_="+34600000002")
    with services.db.session() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 2


def test_a_nul_in_from_still_leaves_a_call_record_with_the_number(services, twilio) -> None:
    add(services, "ana")
    assert client_identity(twilio.incoming("CA1", from_="+34600\x00111222")) == "ana"
    call = _call(services, "CA1")
    assert call is not None and call.caller == "+34600111222"


def test_a_huge_from_is_not_copied_into_the_timeline(services, twilio) -> None:
    """As large as the body limit lets it be (a 100 KB one is refused whole, 413): bounded before it is stored."""
    add(services, "ana")
    assert twilio.incoming("CA0", from_="+" + "3" * 100_000).status == 413
    assert client_identity(twilio.incoming("CA1", from_="+" + "3" * 60_000)) == "ana"
    with services.db.session() as session:
        details = session.scalars(select(CallEvent.detail)).all()
        call = session.scalar(select(Call).where(Call.call_sid == "CA1"))
    assert call.caller is None
    assert max(len(str(detail)) for detail in details) < 1000


def test_odd_fields_from_every_twilio_callback_are_cleaned_not_500(services, twilio) -> None:
    """Statuses and addresses with NULs and kilobytes of junk: valid TwiML, never a failure."""
    add(services, "ana")
    answer = twilio.incoming("CA1")
    junk = "in-progress\x00" + "z" * 5000
    leg = dial_of(answer).find("Client").get("statusCallback")
    assert twilio.post(leg, {"CallSid": "CA" + "e" * 32, "ParentCallSid": "CA1", "CallStatus": junk,
                             "To": "client:ana\x00" + "q" * 5000, "AccountSid": ACCOUNT_SID}).status == 200
    assert twilio.post("/voice/status", {"CallSid": "CA1", "CallStatus": junk, "CallDuration": "1e9"}).status == 200
    with services.db.session() as session:
        kinds = session.scalars(select(CallEvent.kind)).all()
    assert all("\x00" not in kind and len(kind) <= 40 for kind in kinds)


@pytest.mark.parametrize("duration", ["abc", "12.5", "", "-3", "9" * 40])
def test_a_non_numeric_dial_call_duration_does_not_turn_an_answered_call_into_the_apology(services, twilio,
                                                                                          duration) -> None:
    add(services, "ana")
    answer = twilio.incoming("CA1")
    twilio.agent_leg(dial_of(answer).find("Client").get("statusCallback"), "CA1", "in-progress", "client:ana")
    done = twilio.post(dial_of(answer).get("action"), {
        "CallSid": "CA1", "AccountSid": ACCOUNT_SID, "CallStatus": "in-progress", "DialCallStatus": "completed",
        "DialCallSid": "CA" + "d" * 32, "DialCallDuration": duration})
    assert done.status == 200
    assert done.xml.find("Say") is None and done.xml[-1].tag == "Hangup", done.body
    twilio.agent_leg(dial_of(answer).find("Client").get("statusCallback"), "CA1", "completed", "client:ana")
    assert presence(services).state("ana")["status"] == "wrapup"
    assert _call(services, "CA1").outcome == "answered"


def test_the_longest_sid_and_status_still_fit_the_exactly_once_key(services, twilio, caplog) -> None:
    """Found by the fuzzer on PostgreSQL: a 64-character CallSid and a 32-character status made the receipt key of a
    callback's customer leg 121 characters, one more than its column, and the webhook failed."""
    answer = twilio.post("/voice/callbacks/customer-leg?callback=2147483647",
                         {"CallSid": "9" * 64, "ParentCallSid": "CA" + "1" * 32, "CallStatus": "9" * 32})
    assert answer.status == 200
    assert not [record for record in caplog.records if record.levelname == "ERROR"], caplog.text


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


@pytest.mark.parametrize("path", ["/voice/incoming", "/agent/login"])
def test_a_200_mb_body_is_refused_unread_by_a_real_web_worker(config, clean, tmp_path, path) -> None:
    """Point 2 as it was found: 200 MB with no credentials took a gunicorn worker to ~900 MB. Now the answer is a
    413 before the body is read, and the worker's memory does not move."""
    port = free_port()
    env = worker_env(config)
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "python:voice.gunicorn_conf", "--bind",
                               f"127.0.0.1:{port}", "--workers", "1", "--log-level", "warning"],
                              env=env, cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=1).ok:
                    break
            except requests.RequestException:
                assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not come up"
                time.sleep(0.2)
        worker = int(Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()[0])
        before = _rss_kb(worker)
        size = 200 * 1024 * 1024
        with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
            connection.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {size}\r\n"
                               "X-Twilio-Signature: Zm9yZ2Vk\r\n"  # any: nothing checks it before reading, then
                               "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
            chunk = b"a=" + b"x" * (1024 * 1024 - 2)
            sent = 0
            try:
                while sent < size:
                    connection.sendall(chunk)
                    sent += len(chunk)
            except OSError:
                pass  # the server answered and closed: it will not read the rest
            status = connection.recv(64).split(b" ", 2)[1]
        assert status == b"413"
        assert _rss_kb(worker) - before < 20_000, f"the worker grew from {before} KB to {_rss_kb(worker)} KB"
    finally:
        server.terminate()
        server.wait(timeout=30)
