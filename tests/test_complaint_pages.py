"""Complaints on the pages: the agent's own list and each step from their page (JSON, CSRF, clear refusals), the
screen pop on a caller's open complaint, the console's register with its filters and CSV, one complaint's page with
its timeline and steps, the board's complaints at risk, and the compliance report page and CSV."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from sqlalchemy import select, update
from test_agent_page import AgentPage, agent_with_password
from test_complaint_steps import new_complaint
from test_supervisor import form

from directo.core.models import Agent, Call, Callback, Complaint, utcnow
from directo.core.states import CallbackKind, CallbackState
from routing import complaint_life
from routing.complaint_life import Actor


def _login(app, identity: str) -> AgentPage:
    browser = AgentPage(app.test_client())
    assert browser.login(identity).status_code == 302
    return browser


def _staff(services) -> None:
    agent_with_password(services, "ana")
    agent_with_password(services, "bea")
    agent_with_password(services, "sara", role="supervisor")


def test_an_agent_lists_and_resolves_their_complaints_from_the_page(app, services) -> None:
    _staff(services)
    mine = _reference(services, new_complaint(services, "ana"))
    theirs = _reference(services, new_complaint(services, "bea", phone="+34600999888"))
    ana, bea = _login(app, "ana"), _login(app, "bea")
    assert 'id="my-complaints"' in ana.get("/agent/").get_data(as_text=True)

    listed = ana.get("/agent/complaints/").json["complaints"]
    assert [(r["reference"], r["state"], r["next"]) for r in listed] == [(mine, "received", "resolve")]
    assert ana.get(f"/agent/complaints/{theirs}").status_code == 403, "not hers, nor on a call with her"
    assert ana.get("/agent/complaints/R-1999-000001").json == {"error": "no complaint R-1999-000001"}

    body = {"explanation": "Le cobramos dos veces", "remedy": "Devolución", "cause": "El cobro se reintenta"}
    assert ana.post(f"/agent/complaints/{mine}/resolve", body, csrf=False).status_code == 400, "no CSRF token"
    refused = bea.post(f"/agent/complaints/{mine}/resolve", body)
    assert refused.status_code == 403 and "only its owner or a supervisor" in refused.json["error"]
    blank = ana.post(f"/agent/complaints/{mine}/resolve", body | {"cause": ""})
    assert (blank.status_code, blank.json["error"]) == (400, "write the cause, in words for the team")
    done = ana.post(f"/agent/complaints/{mine}/resolve", body)
    assert done.status_code == 200 and (done.json["state"], done.json["next"]) == ("resolved", "call")
    again = ana.post(f"/agent/complaints/{mine}/resolve", body)
    assert again.status_code == 409 and f"{mine} is resolved" in again.json["error"]

    bad = ana.post(f"/agent/complaints/{mine}/answer", {"accepted": "yes"})
    assert (bad.status_code, bad.json["error"]) == (400, "say accepted: true or false")
    told = ana.post(f"/agent/complaints/{mine}/answer", {"accepted": True, "note": "Bien"})
    assert (told.json["state"], told.json["remedy_accepted"], told.json["next"]) == ("told", True, "followup")
    closed = ana.post(f"/agent/complaints/{mine}/verify", {"satisfied": True, "note": "Funcionó"})
    assert (closed.json["state"], closed.json["satisfied"]) == ("closed", True)
    assert ana.get("/agent/complaints/").json["complaints"] == [], "closed ones leave the list"


def test_the_screen_pop_opens_on_the_callers_open_complaint(app, services, twilio) -> None:
    _staff(services)
    reference = _reference(services, new_complaint(services, "ana", phone="+34600111222"))
    from routing import agents as admin

    admin.set_status(services, "ana", "available")
    twilio.incoming("CA77", from_="+34600111222")
    ana = _login(app, "ana")
    context = ana.get("/agent/calls/CA77/context").json
    [complaint] = context["open_complaints"]
    assert (complaint["reference"], complaint["state"], complaint["owner"]) == (reference, "received", "ana")
    assert complaint["due_at"] and complaint["next"] == "resolve"
    page = ana.get("/agent/").get_data(as_text=True)
    assert 'id="complaint-panel"' in page and "complaints.js" in page


def test_the_console_register_filters_by_state_and_overdue_and_exports(app, services) -> None:
    _staff(services)
    late = _reference(services, new_complaint(services, "ana"))
    fresh = _reference(services, new_complaint(services, "bea", phone="+34600999888"))
    with services.db.session() as session:
        session.execute(update(Complaint).where(Complaint.reference == late).values(
            due_at=utcnow() - timedelta(hours=1)))
    complaint_life.resolve(services, fresh, explanation="e", remedy="r", cause="c", by=Actor("bea"))
    sara = _login(app, "sara")

    html = sara.get("/supervisor/complaints").get_data(as_text=True)
    assert "Audit chain intact" in html and late in html and fresh in html
    row = re.search(rf'data-flag="overdue" id="complaint-{late}">', html)
    assert row, "the overdue complaint stands out"
    overdue = sara.get("/supervisor/complaints", query_string={"overdue": "1"}).get_data(as_text=True)
    assert late in overdue and fresh not in overdue
    resolved = sara.get("/supervisor/complaints", query_string={"state": "resolved"}).get_data(as_text=True)
    assert fresh in resolved and late not in resolved
    assert sara.get("/supervisor/complaints", query_string={"state": "lost"}).status_code == 400
    exported = sara.get("/supervisor/complaints.csv", query_string={"overdue": "1"}).get_data(as_text=True)
    [line] = csv.DictReader(io.StringIO(exported))
    assert (line["reference"], line["state"], line["owner"], line["flag"]) == (late, "received", "ana", "OVERDUE")

    board = sara.get("/supervisor/").get_data(as_text=True)
    assert late in board and 'id="complaints-attention">1<' in board
    assert [r["reference"] for r in sara.get("/supervisor/complaints/attention.json").json["complaints"]] == [late]
    assert _login(app, "ana").get("/supervisor/complaints").status_code == 403


def test_a_supervisor_reassigns_resolves_and_verifies_on_the_complaint_page(app, services) -> None:
    _staff(services)
    reference = _reference(services, new_complaint(services, "ana"))
    sara = _login(app, "sara")
    page = sara.get(f"/supervisor/complaints/{reference}").get_data(as_text=True)
    assert "complaint-flagged" in page and 'id="resolve"' in page and "never a person" in page
    assert sara.get("/supervisor/complaints/R-1999-000001").status_code == 404

    no_reason = form(sara, f"/supervisor/complaints/{reference}/assign", {"agent": "bea", "reason": ""})
    assert no_reason.status_code == 400
    moved = form(sara, f"/supervisor/complaints/{reference}/assign", {"agent": "bea", "reason": "Ana de baja"})
    assert moved.status_code == 302
    assert "owner bea" in sara.get(moved.headers["Location"]).get_data(as_text=True)
    form(sara, f"/supervisor/complaints/{reference}/resolve",
         {"explanation": "Cobro doble", "remedy": "Devolución", "cause": "Reintento del cobro"})
    early = form(sara, f"/supervisor/complaints/{reference}/verify", {"satisfied": "1"})
    assert early.status_code == 409 and b"only a complaint that is told can be verified" in early.data
    form(sara, f"/supervisor/complaints/{reference}/answer", {"accepted": "1", "note": "De acuerdo"})
    form(sara, f"/supervisor/complaints/{reference}/verify", {"satisfied": "1", "note": "Todo bien"})
    page = sara.get(f"/supervisor/complaints/{reference}").get_data(as_text=True)
    assert '<span class="tag" id="state">closed</span>' in page and "Todo bien" in page
    for event in ("complaint-assigned", "complaint-resolved", "customer-told", "remedy-accepted", "complaint-closed"):
        assert event in page


def test_the_report_page_and_csv(app, services) -> None:
    _staff(services)
    reference = _reference(services, new_complaint(services, "ana"))
    for step in (lambda: complaint_life.resolve(services, reference, explanation="e", remedy="r", cause="c",
                                                by=Actor("ana")),
                 lambda: complaint_life.record_answer(services, reference, accepted=True, note="", by=Actor("ana")),
                 lambda: complaint_life.verify(services, reference, satisfied=False, note="", by=Actor("ana"))):
        step()
    sara = _login(app, "sara")
    month = utcnow().strftime("%Y-%m")
    html = sara.get("/supervisor/report").get_data(as_text=True)
    assert f"Compliance report {month}" in html and 'id="reopened">1<' in html and 'id="in-time">1<' in html
    assert sara.get("/supervisor/report", query_string={"month": "2026-13"}).status_code == 400
    exported = sara.get("/supervisor/report.csv", query_string={"month": month})
    assert exported.headers["Content-Disposition"] == f"attachment; filename=compliance-{month}.csv"
    [row] = csv.DictReader(io.StringIO(exported.get_data(as_text=True)))
    assert (row["month"], row["complaints_received"], row["complaints_reopened"],
            row["share_satisfied_at_verification"]) == (month, "1", "1", "0.0")


def _reference(services, complaint_id: int) -> str:
    with services.db.session() as session:
        return session.get(Complaint, complaint_id).reference


def test_an_agent_making_a_complaints_call_for_its_owner_sees_it_and_records_the_answer(app, services) -> None:
    """After the owner's hour, another agent who speaks the language makes the call, with the whole context."""
    _staff(services)
    reference = _reference(services, new_complaint(services, "ana"))
    complaint_life.resolve(services, reference, explanation="e", remedy="Devolución", cause="c", by=Actor("ana"))
    bea = _login(app, "bea")
    assert bea.get(f"/agent/complaints/{reference}").status_code == 403
    with services.db.session() as session:  # the dispatcher hands the explanation call to Bea
        bea_id = session.scalar(select(Agent.id).where(Agent.identity == "bea"))
        session.execute(update(Callback).where(Callback.kind == CallbackKind.COMPLAINT_TOLD).values(
            state=CallbackState.RESERVED, agent_id=bea_id))
    shown = bea.get(f"/agent/complaints/{reference}")
    assert (shown.status_code, shown.json["remedy"], shown.json["owner"]) == (200, "Devolución", "ana")
    early = bea.post(f"/agent/complaints/{reference}/answer", {"accepted": True})
    assert early.status_code == 403, "not before she has spoken with the customer"
    with services.db.session() as session:  # the customer answers Bea's call
        complaint = session.scalar(select(Complaint).where(Complaint.reference == reference))
        session.add(Call(call_sid="CA-bea-told", language="es", caller=complaint.phone, agent_id=bea_id,
                         customer_id=complaint.customer_id, started_at=utcnow(), answered_at=utcnow(),
                         direction="callback"))
    told = bea.post(f"/agent/complaints/{reference}/answer", {"accepted": True, "note": "Vale"})
    assert (told.status_code, told.json["state"], told.json["told_by"]) == (200, "told", "bea")
