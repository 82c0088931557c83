"""The life of a complaint after its reference, end to end: resolved by its owner, the customer told by the owner's
call through the callback queue (or by SMS when unreachable), followed up, closed or reopened. Real parts throughout:
the app on a real server, the Twilio stand-in as the phone network, real RQ jobs, the `directo` command as a user
runs it, SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from directo.cli import main
from directo.core import periodic
from directo.core.models import AuditEntry, Call, Callback, Complaint, SmsMessage, utcnow
from directo.core.states import AgentStatus, CallbackKind, CallbackState, ComplaintState, SmsTopic, ToldVia
from recordings import audit, register
from recordings.complaints import flag
from recordings.references import spelled
from routing import complaint_calls, complaint_life
from routing.complaint_life import Actor
from routing.dispatch import dispatch
from routing.presence import presence
from standin import Answer, NoAnswer
from tests.test_callbacks import CUSTOMER, add_agent

SUE = Actor("sue", supervisor=True)


@pytest.fixture
def config(config):
    # Agents are free again the moment a call ends; one try a day at reaching the customer keeps the tests short.
    return replace(config, wrapup_seconds=0, callback_max_attempts=1)


@pytest.fixture
def directo(callcenter):
    """`directo ...` as a supervisor runs it, on the call center's configuration."""
    config = callcenter.services.config
    env = {"DATABASE_URL": config.database_url, "REDIS_URL": config.redis_url, "DIRECTO_DATA_DIR": config.data_dir,
           "TWILIO_AUTH_TOKEN": config.twilio_auth_token, "PUBLIC_BASE_URL": config.public_base_url}
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args), env=env)
        assert (result.exit_code == 0) == ok, result.output
        return result

    return run


def complaint_on_a_call(cc, agent: str = "ana", customer: str = CUSTOMER, summary: str = "Cobro doble") -> str:
    """The customer calls, `agent` answers and flags a complaint mid-call; the customer hears the reference."""
    cc.standin.network.set_behaviour(f"client:{agent}", Answer(after=1.0, talk=300.0))
    cc.standin.network.set_behaviour(customer, Answer(after=1.0, talk=None))
    call = cc.place_call(customer)
    cc.until(lambda: _answered(cc, call.sid), jobs=False)
    reference = flag(cc.services, call.sid, agent, summary=summary).reference
    call.wait(timeout=30)
    cc.until(lambda: complaint(cc, reference).spoken_at is not None)
    return reference


def _answered(cc, sid: str) -> bool:
    with cc.services.db.session() as session:
        return session.scalar(select(Call.answered_at).where(Call.call_sid == sid)) is not None


def complaint(cc, reference: str) -> Complaint:
    with cc.services.db.session() as session:
        return session.scalar(select(Complaint).where(Complaint.reference == reference))


def owed(cc, reference: str, kind: CallbackKind) -> Callback | None:
    with cc.services.db.session() as session:
        return session.scalar(select(Callback)
                              .options(selectinload(Callback.agent), selectinload(Callback.preferred_agent))
                              .join(Complaint, Complaint.id == Callback.complaint_id)
                              .where(Complaint.reference == reference, Callback.kind == kind)
                              .order_by(Callback.id.desc()))


def falls_due(cc, callback_id: int, grace: timedelta = timedelta(minutes=60)) -> None:
    """Time passes until a dated call is due (its owner alone may take it for `grace`)."""
    now = utcnow()
    with cc.services.db.session() as session:
        session.execute(update(Callback).where(Callback.id == callback_id).values(
            due_at=now, exclusive_until=now + grace))


def said_to(cc, endpoint: str) -> str:
    """Everything the stand-in's voices said on the calls to `endpoint`."""
    return json.dumps([e.detail.get("text") for leg in cc.standin.network.legs_to(endpoint)
                       for e in leg.find("verb") if e.detail.get("verb") == "Say"], ensure_ascii=False)


def test_the_whole_life_resolved_told_followed_up_closed(callcenter, directo) -> None:
    cc = callcenter
    add_agent(cc.services, "ana")
    add_agent(cc.services, "bea")
    reference = complaint_on_a_call(cc)
    flagged = complaint(cc, reference)
    assert (flagged.state, flagged.owner_id, flagged.agent_id) == (ComplaintState.RECEIVED, flagged.agent_id, 1)
    assert flagged.due_at - flagged.flagged_at == timedelta(days=15) == flagged.first_due_at - flagged.flagged_at

    [listed] = json.loads(directo("complaints", "list", "--json").output)
    assert (listed["state"], listed["owner"], listed["next_step"], listed["flag"]) == (
        "received", "ana", "write the resolution", None)
    entries = _audit_count(cc)
    refused = directo("complaints", "verify", reference, "--satisfied", ok=False)
    assert f"{reference} is received: only a complaint that is told can be verified" in refused.output
    blaming = directo("complaints", "resolve", reference, "--explanation", "Le cobramos dos veces.",
                      "--remedy", "Devolución del cargo.", "--cause", "Ana pulsó dos veces.", ok=False)
    assert "the cause names Ana: name the process that failed, never a person" in blaming.output
    assert _audit_count(cc) == entries and complaint(cc, reference).state == ComplaintState.RECEIVED

    cc.standin.network.set_behaviour("client:ana", Answer(after=1.0, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, Answer(after=2.0, talk=40.0))
    resolved = directo("complaints", "resolve", reference, "--explanation", "Le cobramos dos veces la factura.",
                       "--remedy", "Devolución del cargo duplicado en 3 días.",
                       "--cause", "La pasarela de pago reintenta sin comprobar el primer cobro.", "--by", "ana")
    assert "resolved; next: call the customer to explain it" in resolved.output
    told_call = owed(cc, reference, CallbackKind.COMPLAINT_TOLD)
    assert (told_call.preferred_agent.identity, told_call.about) == ("ana", "Devolución del cargo duplicado en 3 días.")
    cc.until(lambda: complaint(cc, reference).state == ComplaintState.TOLD, timeout=30)
    assert owed(cc, reference, CallbackKind.COMPLAINT_TOLD).agent.identity == "ana", "its owner made the call"
    assert f"Reclamación {spelled(reference)} de {' '.join(CUSTOMER.lstrip('+'))}: explíquele la solución" \
        in said_to(cc, "client:ana")
    told = complaint(cc, reference)
    assert (told.told_via, told.told_by, told.remedy_accepted) == (ToldVia.CALL, "ana", None)
    followup = owed(cc, reference, CallbackKind.COMPLAINT_FOLLOWUP)
    assert followup.state == CallbackState.QUEUED and followup.preferred_agent.identity == "ana"
    assert timedelta(days=7) - (followup.due_at - told.told_at) < timedelta(seconds=1)

    accepted = directo("complaints", "told", reference, "--accepted", "--note", "Le parece bien", "--by", "ana")
    assert "told; next: follow-up call" in accepted.output
    assert "the customer's answer is already recorded" in directo(
        "complaints", "told", reference, "--not-accepted", ok=False).output

    falls_due(cc, followup.id)  # a week later
    cc.standin.network.set_behaviour(CUSTOMER, Answer(after=2.0, talk=40.0))
    assert dispatch(cc.services) == [followup.id]
    cc.until(lambda: owed(cc, reference, CallbackKind.COMPLAINT_FOLLOWUP).state == CallbackState.DONE, timeout=30)
    assert "pregúntele si la solución ha funcionado" in said_to(cc, "client:ana")
    closed = directo("complaints", "verify", reference, "--satisfied", "--note", "Ya me lo devolvieron", "--by", "ana")
    assert f"{reference} closed" in closed.output

    shown = json.loads(directo("complaints", "show", reference, "--json").output)
    assert (shown["state"], shown["satisfied"], shown["verdict_note"], shown["next_step"]) == (
        "closed", True, "Ya me lo devolvieron", "none: closed")
    events = [s["event"] for s in shown["steps"] if s["what"] == "audit"]
    life = ["complaint-flagged", "complaint-resolved", "customer-told", "remedy-accepted", "complaint-closed"]
    assert [e for e in events if e in life] == life
    kinds = [s["event"] for s in shown["steps"] if s["what"] == "call"]
    assert kinds == ["flagged-on", "complaint-told", "complaint-followup"]
    text = directo("complaints", "show", reference).output
    assert "State:               closed" in text and "Satisfied:           yes" in text
    assert "intact" in directo("audit", "verify").output

    month = told.flagged_at.strftime("%Y-%m")
    figures = json.loads(directo("report", "--month", month, "--json").output)
    assert figures | {
        "complaints_received": 1, "complaints_resolved_within_deadline": 1, "complaints_customer_told": 1,
        "complaints_verified": 1, "complaints_satisfied_at_verification": 1, "share_satisfied_at_verification": 100.0,
        "complaints_reopened": 0, "complaints_open_past_deadline": 0, "calls_received": 1,
        "calls_reaching_a_person_within_3_minutes": 1} == figures
    assert figures["median_days_to_customer_told"] == 0.0
    header, values = directo("report", "--month", month, "--csv").output.splitlines()
    assert dict(zip(header.split(","), values.split(","), strict=True))["complaints_verified"] == "1"
    assert "  satisfied at verification              1" in directo("report", "--month", month).output
    assert "write it as YYYY-MM" in directo("report", "--month", "diciembre", ok=False).output


def _audit_count(cc) -> int:
    with cc.services.db.session() as session:
        return len(session.scalars(select(AuditEntry.id)).all())


def resolved_by_ana(cc, reference: str) -> None:
    complaint_life.resolve(cc.services, reference, explanation="Le cobramos dos veces",
                           remedy="Le devolvemos el cargo duplicado", cause="La pasarela reintenta sin comprobar",
                           by=Actor("ana"))


def test_a_customer_unreachable_on_three_days_gets_the_resolution_by_sms(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana")
    reference = complaint_on_a_call(cc)
    cc.standin.network.set_behaviour("client:ana", Answer(after=1.0, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, NoAnswer())
    resolved_by_ana(cc, reference)
    for day in range(1, 4):
        trying = owed(cc, reference, CallbackKind.COMPLAINT_TOLD)
        if day > 1:
            assert trying.due_at - trying.queued_at == timedelta(days=1), "another day's try, by the same owner"
            assert trying.preferred_agent.identity == "ana"
            falls_due(cc, trying.id)
            assert dispatch(cc.services) == [trying.id]
        cc.until(functools.partial(_tried, cc, reference, trying.id), timeout=30)
        assert complaint(cc, reference).state == (ComplaintState.RESOLVED if day < 3 else ComplaintState.TOLD)
    told = complaint(cc, reference)
    assert (told.told_via, told.told_by) == (ToldVia.SMS, "directo")
    cc.until(lambda: any(m.status == "delivered" and "cargo duplicado" in m.body for m in cc.standin.network.messages))
    [text] = [m for m in cc.standin.network.messages if "cargo duplicado" in m.body]
    assert text.to == CUSTOMER and text.body == (
        f"Reclamación {reference}: Le cobramos dos veces. Le ofrecemos: Le devolvemos el cargo duplicado. "
        "Si quiere hablarlo, llámenos con su referencia.")
    with cc.services.db.session() as session:
        [notice] = session.scalars(select(SmsMessage).where(SmsMessage.topic == SmsTopic.COMPLAINT_RESOLUTION)).all()
        events = [e.event for e in audit.entries(session, notice.complaint_id)]
        assert events.index("customer-told") < events.index("sms-accepted", events.index("customer-told"))
        assert events[-1] == "sms-delivered" and audit.verify(session).intact
    assert owed(cc, reference, CallbackKind.COMPLAINT_FOLLOWUP).state == CallbackState.QUEUED, \
        "the follow-up still asks whether the remedy worked"


def _tried(cc, reference: str, callback_id: int) -> bool:
    """The day's try ended: missed, another day's try (or the SMS) followed, and the owner's own leg is over (an
    agent is free only when their leg has ended, after hearing that the customer was not reached)."""
    latest = owed(cc, reference, CallbackKind.COMPLAINT_TOLD)
    return (latest.id != callback_id or latest.state == CallbackState.MISSED) \
        and presence(cc.services).state("ana").get("status") == AgentStatus.AVAILABLE


def test_due_date_reached_with_nobody_to_call_texts_the_resolution(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana")
    reference = complaint_on_a_call(cc)
    from routing import agents as admin

    admin.set_status(cc.services, "ana", "away")  # and nobody else speaks Spanish: the call waits in the queue
    resolved_by_ana(cc, reference)
    waiting = owed(cc, reference, CallbackKind.COMPLAINT_TOLD)
    assert waiting.state == CallbackState.QUEUED
    assert complaint_calls.deadlines(cc.services) == [], "not yet due"
    with cc.services.db.session() as session:  # fifteen days pass
        past = utcnow() - timedelta(minutes=1)
        session.execute(update(Complaint).where(Complaint.reference == reference).values(
            due_at=past, first_due_at=past))
    with cc.services.db.session() as session:
        [listed] = register.listing(session, register.query(overdue=True))
    assert (listed["flag"], listed["next_step"]) == ("OVERDUE", "call the customer to explain it (due "
                                                                 f"{waiting.due_at:%Y-%m-%d %H:%M})")
    [job] = [p.job for p in periodic.table(cc.services) if p.name == "complaint-deadlines"]
    ran = cc.services.queue.enqueue(job)  # as the worker's periodic loop does, by its dotted path
    cc.run_jobs()
    assert ran.return_value() == [reference]
    assert complaint_calls.deadlines(cc.services) == [], "once"
    cancelled = owed(cc, reference, CallbackKind.COMPLAINT_TOLD)
    assert (cancelled.id, cancelled.state) == (waiting.id, CallbackState.CANCELLED)
    assert "due date reached: told by SMS" in cancelled.close_reason
    told = complaint(cc, reference)
    assert (told.state, told.told_via) == (ComplaintState.TOLD, ToldVia.SMS)
    assert told.first_told_at > told.first_due_at, "late: the report will count it outside the deadline"
    cc.until(lambda: any(reference in m.body and "cargo duplicado" in m.body for m in cc.standin.network.messages))
