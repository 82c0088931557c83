"""Complaint acknowledgement end to end: a gap-free reference committed first, spoken twice on a recorded leg,
texted until delivered, the recording stored by content, and every step in a hash-chained audit log.

Real parts throughout: signed webhooks, a real RQ worker, the real twilio client against the stand-in."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import flask
import pytest
from click.testing import CliRunner
from flask_wtf.csrf import generate_csrf
from pydub import AudioSegment
from rq import SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select
from test_incoming import CALLER, add, complete_call, dial_of, path_of

from directo.cli import main
from directo.core.jobs import use_services
from directo.core.models import Agent, AuditEntry, Call, Complaint, Recording, SmsMessage, utcnow
from recordings import audit
from recordings.acknowledgement import sms_body
from recordings.complaints import flag
from recordings.errors import NotAllowed
from recordings.references import format_reference
from routing import roster
from standin import Answer, StandIn
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN
from voice.auth import IDENTITY_KEY, VERSION_KEY

OUR_NUMBER = "+34910000000"
ANA, BEA = "ana", "bea"


@pytest.fixture
def standin():
    with StandIn(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, time_scale=0.02, seed=11) as phone:
        yield phone


@pytest.fixture
def config(config, standin):
    return dataclasses.replace(config, twilio_api_base_url=standin.base_url, twilio_caller_id=OUR_NUMBER)


@pytest.fixture
def worker(services):
    """Runs queued jobs in-process; `due=True` also runs retries and delayed jobs now, as if their time came."""
    use_services(services)

    def run(due: bool = True, rounds: int = 10) -> None:
        for _ in range(rounds):
            SimpleWorker([services.queue], connection=services.redis).work(burst=True)
            registry = ScheduledJobRegistry(queue=services.queue)
            waiting = registry.get_job_ids()
            if not due or not waiting:
                return
            for job_id in waiting:
                job = Job.fetch(job_id, connection=services.redis)
                registry.remove(job)
                services.queue.enqueue_job(job)

    yield run
    use_services(None)


def log_in(app, client, identity: str, role: str = "agent") -> dict[str, str]:
    """A logged-in browser session (of an agent on record, added if need be) and the CSRF header its page sends."""
    services = app.extensions["directo"]
    with services.db.session() as session:
        agent = session.scalar(select(Agent).where(Agent.identity == identity))
    if agent is None:
        agent = roster.add_agent(services, identity, identity.title(), ["es"], role=role)
    with app.test_request_context():
        token = generate_csrf()
        raw = flask.session["csrf_token"]
    with client.session_transaction() as session:
        session.update({IDENTITY_KEY: identity, VERSION_KEY: agent.session_version, "csrf_token": raw})
    return {"X-CSRFToken": token}


def answered_call(services, twilio, sid: str, agent: str = ANA, from_: str = CALLER):
    """A caller put through to `agent`, who has answered: the moment a complaint can be flagged."""
    answer = twilio.incoming(sid, from_=from_)
    # Each call's agent leg has its own CallSid (the shared helper reuses one, which exactly-once would replay).
    twilio.post(dial_of(answer).find("Client").get("statusCallback"), {
        "CallSid": sid + "LEG", "ParentCallSid": sid, "CallStatus": "in-progress", "To": f"client:{agent}",
        "AccountSid": ACCOUNT_SID, "Direction": "outbound-dial"})
    return answer


def one(services, model, *where):
    with services.db.session() as session:
        return session.scalars(select(model).where(*where)).one()


def test_flagging_issues_one_reference_per_call_and_refuses_clearly(app, services, twilio, client) -> None:
    add(services, ANA)
    add(services, BEA)
    answered_call(services, twilio, "CA001")
    year = one(services, Call, Call.call_sid == "CA001").started_at.year

    refused = client.post("/complaints/flag", json={"call_sid": "CA001"})
    assert refused.status_code == 400 and "CSRF" in refused.json["error"]
    headers = log_in(app, client, ANA)
    assert client.post("/complaints/flag", json={"call_sid": "CA001"}).status_code == 400, "no token, no complaint"
    first = client.post("/complaints/flag", json={"call_sid": "CA001", "summary": "Cobro doble"}, headers=headers)
    assert first.status_code == 201, first.get_data(as_text=True)
    assert first.json == {"reference": format_reference(year, 1), "complaint_id": first.json["complaint_id"],
                          "call_sid": "CA001", "created": True}
    again = client.post("/complaints/flag", json={"call_sid": "CA001", "summary": "otra vez"}, headers=headers)
    assert (again.status_code, again.json["reference"], again.json["created"]) == (200, first.json["reference"], False)

    assert client.post("/complaints/flag", json={"call_sid": "CA404"}, headers=headers).json == {
        "error": "no call CA404"}
    twilio.incoming("CA002", from_="+34600999888")  # ringing BEA, not answered yet
    not_yours = client.post("/complaints/flag", json={"call_sid": "CA002"}, headers=headers)
    assert (not_yours.status_code, not_yours.json["error"]) == (403, "call CA002 is not ana's call")
    boss = log_in(app, client, "sue", "supervisor")
    early = client.post("/complaints/flag", json={"call_sid": "CA002"}, headers=boss)
    assert (early.status_code, early.json["error"]) == (409, "call CA002 has not reached a person yet")
    too_long = client.post("/complaints/flag", json={"call_sid": "CA001", "summary": "x" * 2001}, headers=boss)
    assert too_long.status_code == 400 and "at most 2000" in too_long.json["error"]

    with services.db.session() as session:
        complaint = session.scalars(select(Complaint)).one()
        assert (complaint.summary, complaint.flagged_by, complaint.phone, complaint.language) == (
            "Cobro doble", ANA, CALLER, "es")
        assert [e.event for e in audit.entries(session)] == ["complaint-flagged"]
    assert len(services.queue) == 1, "the SMS is queued once, after the complaint is committed"


def test_concurrent_flags_get_consecutive_references_with_no_gap_and_no_duplicate(services, twilio) -> None:
    add(services, ANA)
    sids = [f"CA1{n:02d}" for n in range(12)]
    with services.db.session() as session:
        session.add_all(Call(call_sid=sid, language="es", caller=f"+346001112{n:02d}", agent_id=1,
                             started_at=utcnow(), answered_at=utcnow())
                        for n, sid in enumerate(sids))
    barrier = threading.Barrier(len(sids) + 2)
    results: list[str] = []

    def flag_one(sid: str) -> None:
        barrier.wait()
        results.append(flag(services, sid, ANA).reference)

    threads = [threading.Thread(target=flag_one, args=(sid,)) for sid in [*sids, sids[0], sids[1]]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    year = one(services, Call, Call.call_sid == sids[0]).started_at.year
    expected = {format_reference(year, n) for n in range(1, len(sids) + 1)}
    assert set(results) == expected and len(results) == len(sids) + 2, "the same call flagged twice shares one"
    with services.db.session() as session:
        assert set(session.scalars(select(Complaint.reference))) == expected
        assert audit.verify(session).entries == len(sids) and audit.verify(session).intact


def test_a_flagged_call_keeps_the_caller_on_the_line_for_the_reference(services, twilio) -> None:
    add(services, ANA)
    add(services, BEA)
    answer = answered_call(services, twilio, "CA001")
    plain = twilio.incoming("CA002", from_="+34600999888")
    complete_call(twilio, plain, "CA002", BEA)
    assert [child.tag for child in plain.xml] == ["Dial"], "a call with no complaint just ends"
    reference = flag(services, "CA001", ANA).reference

    done = twilio.dial_complete(dial_of(answer).get("action"), "CA001", "completed", duration=40)
    [redirect] = list(done.xml)
    assert redirect.tag == "Redirect" and urlsplit(redirect.text).path == "/voice/complaints/acknowledge"
    ack = twilio.post(redirect.text, {"CallSid": "CA001", "AccountSid": ACCOUNT_SID, "CallStatus": "in-progress"})
    says = [say.text for say in ack.xml.findall("Say")]
    spelled = ", ".join(ch for ch in reference if ch.isalnum())
    assert len(says) == 2 and all(spelled in say for say in says), "spelled out slowly, twice"
    assert {say.get("language") for say in ack.xml.findall("Say")} == {"es-ES"}
    assert [child.tag for child in ack.xml] == ["Pause", "Say", "Pause", "Say", "Redirect"]
    replay = twilio.post(redirect.text, {"CallSid": "CA001", "AccountSid": ACCOUNT_SID, "CallStatus": "in-progress"})
    assert replay.body == ack.body, "a redelivered webhook gets the same answer and starts nothing new"
    spoken_url = ack.xml.find("Redirect").text
    bye = twilio.post(spoken_url, {"CallSid": "CA001", "AccountSid": ACCOUNT_SID, "CallStatus": "in-progress"})
    assert [child.tag for child in bye.xml] == ["Say", "Hangup"] and "SMS" in bye.xml.find("Say").text
    assert one(services, Complaint, Complaint.reference == reference).spoken_at is not None

    forged = twilio.post(spoken_url, {"CallSid": "CA001"}, signature="bad")
    assert forged.status == 403
    wrong_call = twilio.post(path_of(spoken_url), {"CallSid": "CA999", "AccountSid": ACCOUNT_SID})
    assert [child.tag for child in wrong_call.xml] == ["Hangup"]
    with services.db.session() as session:
        events = [e.event for e in audit.entries(session)]
    # The REST recording start failed here (the stand-in never saw CA001): the reference was still spoken.
    assert events == ["complaint-flagged", "acknowledgement-started", "recording-not-started", "reference-spoken"]


def test_whole_call_through_the_phone_network(services, live_server, standin, worker, config) -> None:
    """A customer calls, Ana answers and flags a complaint, hangs up; the customer hears the reference twice,
    that leg is recorded, stored by SHA-256 and linked; the SMS is delivered; the audit chain holds."""
    add(services, ANA)
    standin.network.set_behaviour(f"client:{ANA}", Answer(after=1.0, talk=60.0))
    call = standin.network.place_inbound_call(
        CALLER, OUR_NUMBER, live_server.url + "/voice/incoming",
        status_callback=live_server.url + "/voice/status", status_callback_event=("completed",))
    standin.network.wait_until(lambda _: _answered(services, call.sid), timeout=20)
    flagged = flag(services, call.sid, ANA, summary="Corte de servicio",
                   status_url=live_server.url + "/voice/complaints/sms-status")
    call.wait(30)
    standin.network.wait_until(lambda net: net.recordings and net.recordings[0].status == "completed", timeout=20)
    assert standin.flush(10)
    worker()
    standin.network.wait_until(lambda net: net.messages and net.messages[0].status == "delivered", timeout=20)
    assert standin.flush(10)

    said = [e["text"] for e in call.find("verb", verb="Say")]
    spelled = ", ".join(ch for ch in flagged.reference if ch.isalnum())
    assert sum(spelled in text for text in said) == 2
    [message] = standin.messages
    assert (message.to, message.from_, message.status) == (CALLER, OUR_NUMBER, "delivered")
    assert flagged.reference in message.body
    [recording] = standin.recordings
    assert recording.call_sid == call.sid and recording.source == "StartCallRecordingAPI"

    with services.db.session() as session:
        complaint = session.scalars(select(Complaint)).one()
        assert complaint.spoken_at is not None and complaint.summary == "Corte de servicio"
        assert [m.state for m in complaint.messages] == ["delivered"]
        stored = complaint.recording
        assert (stored.twilio_sid, stored.state, stored.kind) == (recording.sid, "stored", "acknowledgement")
        path = Path(stored.path)
        assert path.parent.parent == Path(config.recordings_dir)
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == stored.sha256 and path.stem == stored.sha256
        assert stored.format == "mp3" and path.suffix == ".mp3"
        audio = AudioSegment.from_file(BytesIO(data), format="mp3", codec="mp3")  # no ffprobe needed
        assert (audio.frame_rate, audio.channels) == (8000, 1)
        assert abs(len(audio) - stored.duration_ms) < 150, "MP3 frames pad the end a little"
        assert stored.duration_ms >= 5000, "both readings of the reference are on the recording"
        events = [e.event for e in audit.entries(session, complaint.id)]
        assert events[0] == "complaint-flagged" and events[-1] in ("recording-stored", "sms-delivered")
        assert {"acknowledgement-started", "reference-spoken", "recording-completed", "recording-stored",
                "sms-accepted", "sms-delivered"} <= set(events)
        assert audit.verify(session).intact


def _answered(services, sid: str) -> bool:
    with services.db.session() as session:
        return session.scalar(select(Call.answered_at).where(Call.call_sid == sid)) is not None


def test_sms_is_retried_when_refused_and_sent_again_when_undelivered(services, twilio, standin, worker,
                                                                     live_server) -> None:
    add(services, ANA)
    answered_call(services, twilio, "CA001")
    standin.faults.refuse_messages(2, status=503)
    standin.faults.undeliver_messages(1, status="undelivered", error_code=30003)
    status_url = live_server.url + "/voice/complaints/sms-status"
    flagged = flag(services, "CA001", ANA, status_url=status_url)

    worker()  # refused twice (RQ retries), then accepted, then the carrier fails to deliver it
    standin.network.wait_until(lambda net: net.messages and net.messages[0].status == "undelivered", timeout=20)
    assert standin.flush(10)
    worker()  # the re-send, queued for later by the delivery report, runs now
    standin.network.wait_until(lambda net: len(net.messages) == 2 and net.messages[1].status == "delivered",
                               timeout=20)
    assert standin.flush(10)

    with services.db.session() as session:
        messages = session.scalars(select(SmsMessage).order_by(SmsMessage.id)).all()
        assert [(m.state, m.attempts) for m in messages] == [("undelivered", 3), ("delivered", 1)]
        assert messages[0].last_error == "Twilio error 30003"
        assert all(flagged.reference in m.body for m in messages)
    worker()
    assert len(standin.messages) == 2, "a delivered reference is never sent again, however often the job runs"


def test_a_broken_recording_is_fetched_again_then_marked_failed(services, twilio, standin, worker,
                                                                live_server) -> None:
    add(services, ANA)
    standin.network.set_behaviour(f"client:{ANA}", Answer(after=1.0, talk=30.0))
    standin.faults.corrupt_recording_media(1, kind="truncated")
    call = standin.network.place_inbound_call(CALLER, OUR_NUMBER, live_server.url + "/voice/incoming")
    standin.network.wait_until(lambda _: _answered(services, call.sid), timeout=20)
    flag(services, call.sid, ANA)
    call.wait(30)
    standin.network.wait_until(lambda net: net.recordings and net.recordings[0].status == "completed", timeout=20)
    assert standin.flush(10)
    worker()
    with services.db.session() as session:
        recording = session.scalars(select(Recording)).one()
        assert recording.state == "failed" and "truncated" in recording.last_error
        assert recording.attempts == 7 and recording.sha256 is None
        events = [e.event for e in audit.entries(session)]
        assert events.count("recording-fetch-failed") == 1 and audit.verify(session).intact


def test_audit_chain_shows_an_edit_and_a_removal(services, twilio) -> None:
    add(services, ANA)
    add(services, BEA)
    for sid, agent in (("CA001", ANA), ("CA002", BEA)):
        answered_call(services, twilio, sid, agent, from_=f"+3460011122{sid[-1]}")
        flag(services, sid, agent)
    with services.db.session() as session:
        assert audit.verify(session) == audit.Verification(2, session.scalars(
            select(AuditEntry.hash).order_by(AuditEntry.id.desc())).first())
        first, second = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        first.payload = first.payload.replace("ana", "bea")
    with services.db.session() as session:
        result = audit.verify(session)
        assert (result.broken_at, result.entries) == (first.id, 0) and "edited" in result.problem
        session.delete(session.get(AuditEntry, first.id))
    with services.db.session() as session:
        result = audit.verify(session)
        assert result.broken_at == second.id and "removed" in result.problem


def test_withheld_caller_hears_the_reference_and_gets_no_sms(services, twilio, worker, standin) -> None:
    add(services, ANA)
    answered_call(services, twilio, "CA001", from_="anonymous")
    flagged = flag(services, "CA001", ANA)
    worker()
    assert standin.messages == []
    assert one(services, Complaint, Complaint.id == flagged.complaint_id).phone is None
    with pytest.raises(NotAllowed):
        flag(services, "CA001", BEA)


def test_reference_in_acknowledgement_url_is_the_complaint(services, twilio) -> None:
    add(services, ANA)
    answer = answered_call(services, twilio, "CA001")
    flagged = flag(services, "CA001", ANA)
    done = twilio.dial_complete(dial_of(answer).get("action"), "CA001", "completed", duration=40)
    query = parse_qs(urlsplit(done.xml.find("Redirect").text).query)
    assert query == {"complaint": [str(flagged.complaint_id)]}


def test_cli_flags_lists_sweeps_and_verifies(services, twilio, config, standin, worker) -> None:
    env = {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url, "DIRECTO_DATA_DIR": config.data_dir,
           "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "TWILIO_ACCOUNT_SID": config.twilio_account_sid}
    runner = CliRunner()
    add(services, ANA)
    answered_call(services, twilio, "CA001")

    flagged = runner.invoke(main, ["complaints", "flag", "CA001", "--by", "sue", "--summary", "Trato"], env=env)
    assert flagged.exit_code == 0 and "issued for CA001" in flagged.output, flagged.output
    again = runner.invoke(main, ["complaints", "flag", "CA001", "--by", "sue"], env=env)
    assert "already issued" in again.output
    assert runner.invoke(main, ["complaints", "flag", "CA404", "--summary", "x"], env=env).exit_code == 1
    [row] = json.loads(runner.invoke(main, ["complaints", "list", "--json"], env=env).output)
    assert (row["call_sid"], row["flagged_by"], row["summary"], row["sms"], row["spoken"]) == (
        "CA001", "sue", "Trato", "pending", False)
    services.queue.empty()  # the flag's own SMS job is lost, as in a Redis outage: the sweep queues it again
    swept = runner.invoke(main, ["complaints", "sweep"], env=env)
    assert "queued 1 job(s)" in swept.output, swept.output
    assert "queued 0 job(s)" in runner.invoke(main, ["complaints", "sweep"], env=env).output, "not doubled"
    worker()
    assert [m.body for m in standin.messages] == [sms_body("es", row["reference"])]

    shown = json.loads(runner.invoke(main, ["complaints", "show", row["reference"], "--json"], env=env).output)
    assert (shown["agent"], shown["phone"], shown["summary"]) == (ANA, CALLER, "Trato")
    assert [e["event"] for e in shown["trail"]][0] == "complaint-flagged"
    assert shown["messages"] and shown["messages"][0]["sid"] == standin.messages[0].sid
    text = runner.invoke(main, ["complaints", "show", row["reference"]], env=env).output
    assert f"Reference:           {row['reference']}" in text and "Trail:" in text
    assert runner.invoke(main, ["complaints", "show", "R-1999-000001"], env=env).exit_code == 1

    verified = runner.invoke(main, ["audit", "verify"], env=env)
    assert verified.exit_code == 0 and "intact: 2 entries" in verified.output, verified.output
    assert "complaint-flagged" in runner.invoke(main, ["audit", "list", "--complaint", row["reference"]],
                                                env=env).output
    with services.db.session() as session:
        session.scalars(select(AuditEntry).order_by(AuditEntry.id)).first().event = "nothing-happened"
    broken = runner.invoke(main, ["audit", "verify"], env=env)
    assert broken.exit_code == 1 and "broken at entry" in broken.output
