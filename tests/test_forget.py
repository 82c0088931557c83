"""Forgetting a customer on request: nothing that identifies them is left where we can change it, a complaint's
proof is kept, the audit chain still verifies, the command says what it removed and what it kept, and why."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import JSON, String, Text, select
from test_agent_page import CALLER, agent_with_password
from test_incoming import complete_call

from directo.cli import main
from directo.core.models import AuditEntry, Base, Call, Callback, Complaint, Customer, Recording, utcnow
from directo.core.unit_of_work import work
from recordings.complaints import flag
from routing import agents as admin
from routing import customers, promises
from routing.errors import Conflict
from routing.forgetting import forget

NAME, HINT, NOTES, CALL_NOTES = "Lucía Núñez", "loo-THEE-a", "Recently widowed; speak slowly.", "Wants a refund."
REASON_AUDIO = b"ID3" + bytes(range(256)) * 8


@pytest.fixture
def config(config):
    """Open around the clock: a promise can be made whenever the test runs."""
    return replace(config, business_hours="Mon-Sun 00:00-24:00")


@pytest.fixture
def directo(config):
    env = {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url, "DIRECTO_DATA_DIR": config.data_dir,
           "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "BUSINESS_HOURS": "Mon-Sun 00:00-24:00"}

    def run(*args: str):
        return CliRunner().invoke(main, list(args), env=env)

    return run


def _a_customer_with_a_past(services, twilio, config) -> tuple[str, Path]:
    """Lucía: a profile, two calls with notes, a complaint with its recording and SMS, a recorded callback reason,
    and a promise still waiting with its SMS; no call in progress."""
    agent_with_password(services, "ana", status="available")
    first = twilio.incoming("CA01", from_=CALLER)
    with services.db.session() as session:
        session.scalar(select(Call).where(Call.call_sid == "CA01")).notes = CALL_NOTES
    twilio.agent_leg(first.xml.find("Dial/Client").get("statusCallback"), "CA01", "in-progress", "client:ana")
    reference = flag(services, "CA01", "ana", summary="Charged twice in March").reference
    complete_call(twilio, first, "CA01", "ana")
    admin.set_status(services, "ana", "available")
    twilio.incoming("CA02", from_=CALLER)
    proof = Path(config.recordings_dir) / "aa" / "proof.mp3"
    reason = Path(config.recordings_dir) / "bb" / "reason.mp3"
    for path, data in ((proof, b"ID3proof" * 64), (reason, REASON_AUDIO)):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    with work(services.db) as unit:
        session = unit.session
        customer = session.scalar(select(Customer).where(Customer.phone == CALLER))
        customers.change(session, customer.id, {"name": NAME, "say_as": HINT, "notes": NOTES}, "ana", unit.now)
        complaint = session.scalar(select(Complaint).where(Complaint.reference == reference))
        complaint.recording = Recording(twilio_sid="RE-proof", call_sid="CA01", kind="complaint", source_url="x",
                                        state="stored", path=str(proof), sha256="a" * 64, format="mp3")
        said = Recording(twilio_sid="RE-reason", call_sid="CA00", kind="callback-reason", source_url="x",
                         state="stored", path=str(reason), sha256="b" * 64, format="mp3")
        session.add(said)
        session.flush()
        session.add(Callback(customer_id=customer.id, phone=CALLER, language="es", state="done",
                             promised_by=unit.now, reason_recording_id=said.id, reason_recording_sid="RE-reason"))
    promises.promise(services, "CA02", utcnow() + timedelta(days=1), "the refund of March", "ana")
    twilio.status("CA02", "completed", duration=10)
    return reference, reason


def _everything_we_can_change(services) -> list[str]:
    """Every text and JSON value in the database outside the append-only audit log."""
    found = []
    with services.db.session() as session:
        for table in Base.metadata.sorted_tables:
            if table.name == AuditEntry.__tablename__:
                continue
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            for row in session.execute(select(*columns)) if columns else []:
                found += [json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
                          for value in row if value is not None]
    return found


def test_forgetting_removes_what_identifies_them_and_keeps_the_complaints_proof(services, twilio, config,
                                                                                 directo) -> None:
    reference, reason = _a_customer_with_a_past(services, twilio, config)
    result = directo("customers", "forget", "600 111 222", "--yes", "--by", "sue")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Removed:" in out and "Kept, and why:" in out
    assert f"complaint {reference}: reference, summary" in out and "Ley 44/2006" in out
    assert "1 call we still owed them, cancelled" in out and "the notes of 1 call;" in out
    left = " ".join(_everything_we_can_change(services))
    for secret in (CALLER, CALLER.lstrip("+"), NAME, HINT, NOTES, CALL_NOTES, "the refund of March"):
        assert secret not in left, f"{secret!r} is still in the database"
    with services.db.session() as session:
        complaint = session.scalar(select(Complaint).where(Complaint.reference == reference))
        assert complaint.summary == "Charged twice in March" and complaint.recording.sha256 == "a" * 64
        assert complaint.phone.startswith("forgotten-") and complaint.reference_texts
        assert Path(complaint.recording.path).exists(), "the complaint's recording is proof: kept"
        entries = session.scalars(select(AuditEntry).where(AuditEntry.complaint_id == complaint.id)).all()
        assert entries and CALLER in entries[0].payload, "entries written before stay as they were"
        forgotten = session.scalar(select(AuditEntry).where(AuditEntry.event == "customer-forgotten"))
        assert CALLER not in forgotten.payload and '"by":"sue"' in forgotten.payload
        customer = session.scalar(select(Customer).where(Customer.forgotten_at.is_not(None)))
        assert (customer.name, customer.say_as, customer.notes) == (None, None, None)
    assert not reason.exists(), "the recorded callback reason is deleted"
    assert any(job.func_name == "routing.forgetting.delete_twilio_recording" and job.args == ("RE-reason",)
               for job in services.queue.jobs), "and Twilio's copy, by a job"
    verified = directo("audit", "verify")
    assert verified.exit_code == 0 and "audit chain intact" in verified.output, verified.output
    assert "no customer with number +34600111222" in directo("customers", "forget", CALLER, "--yes").output


def test_forgetting_waits_for_a_call_in_progress_and_changes_nothing_meanwhile(services, twilio, directo) -> None:
    agent_with_password(services, "ana", status="available")
    twilio.incoming("CA01", from_=CALLER)
    with pytest.raises(Conflict, match=r"a call with this customer is in progress \(CA01\)"):
        forget(services, CALLER, "sue")
    refused = directo("customers", "forget", CALLER, "--yes")
    assert refused.exit_code == 1 and "in progress" in refused.output
    with services.db.session() as session:
        assert session.scalar(select(Customer.phone)) == CALLER


def test_a_forgotten_customer_who_calls_again_is_a_stranger(services, twilio) -> None:
    agent_with_password(services, "ana", status="available")
    first = twilio.incoming("CA01", from_=CALLER)
    complete_call(twilio, first, "CA01", "ana")
    with work(services.db) as unit:
        customers.change(unit.session, 1, {"name": NAME}, "ana", unit.now)
    forget(services, CALLER, "sue")
    admin.set_status(services, "ana", "available")
    again = twilio.incoming("CA02", from_=CALLER)
    parameters = {p.get("name"): p.get("value") for p in again.xml.iter("Parameter")}
    assert (parameters["callerName"], parameters["previousCalls"], parameters["lastAgent"]) == ("", "0", "")
    with services.db.session() as session:
        assert len(session.scalars(select(Customer)).all()) == 2
