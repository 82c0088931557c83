"""A complaint carried to a verified resolution in a real headless Chromium: the agent resolves it from her page,
the explanation and follow-up calls reach her through the Twilio stand-in with the complaint on her screen, she
records the customer's answers; a supervisor sees it close in the register, its page and the month's report."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from test_agent_browser import CHROMIUM, LAPTOP, SCREENSHOTS, browser_page  # noqa: F401  (the fixture, reused)
from test_agent_page import PASSWORD, agent_with_password

from directo.core.models import Callback, Complaint, utcnow
from directo.core.states import CallbackKind, CallbackState, ComplaintState
from recordings.complaints import flag
from standin import Answer
from tests.test_callbacks import CUSTOMER

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page, base: str, identity: str) -> None:
    page.goto(base + "/agent/login")
    page.fill("#identity", identity)
    page.fill("#password", PASSWORD)
    page.click("#log-in")


def _complaint(cc) -> Complaint:
    with cc.services.db.session() as session:
        return session.scalars(select(Complaint)).one()


def _owed(cc, kind: CallbackKind) -> Callback | None:
    with cc.services.db.session() as session:
        return session.scalar(select(Callback).where(Callback.kind == kind).order_by(Callback.id.desc()))


def _answered(cc, sid: str) -> bool:
    from directo.core.models import Call

    with cc.services.db.session() as session:
        return session.scalar(select(Call.answered_at).where(Call.call_sid == sid)) is not None


def test_an_agent_resolves_a_complaint_and_a_supervisor_sees_it_close(callcenter, browser_page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    cc, page = callcenter, browser_page
    agent_with_password(cc.services, "ana", status="available")
    agent_with_password(cc.services, "sara", role="supervisor")
    network = cc.standin.network
    network.set_behaviour("client:ana", Answer(after=1.0, talk=300.0))
    network.set_behaviour(CUSTOMER, Answer(after=1.0, talk=None))
    call = cc.place_call(CUSTOMER)
    cc.until(lambda: _answered(cc, call.sid), jobs=False)
    reference = flag(cc.services, call.sid, "ana", summary="Me cobraron dos veces la factura de marzo").reference
    call.wait(timeout=30)

    log_in(page, cc.url, "ana")
    item = page.locator(f'#complaint-list li[data-reference="{reference}"]')
    expect(item).to_contain_text("recibida")
    expect(item).to_contain_text("Escribe la resolución antes del")
    item.locator("button").click()
    expect(page.locator("#cp-title")).to_have_text(f"Reclamación {reference}")
    expect(page.locator("#cp-summary")).to_have_text("Me cobraron dos veces la factura de marzo")
    expect(page.locator("#resolve-form")).to_be_visible()
    expect(page.locator("#resolve-form")).to_contain_text("nunca a una persona")
    page.fill("#resolve-what", "Le cobramos dos veces la factura de marzo.")
    page.fill("#resolve-remedy", "Le devolvemos el cargo duplicado en tres días.")
    page.fill("#resolve-cause", "Ana olvidó anular el primer cobro.")
    page.click("#resolve-submit")
    expect(page.locator("#cp-result")).to_contain_text("name the process that failed, never a person")
    page.fill("#resolve-cause", "La pasarela de pago reintenta sin comprobar el primer cobro.")
    shot(page, "agent-complaint-resolve")

    # Ana's wrap-up holds the explanation call until she is ready; the customer will answer it.
    network.set_behaviour("client:ana", Answer(after=1.0, talk=None))
    network.set_behaviour(CUSTOMER, Answer(after=2.0, talk=60.0))
    page.click("#resolve-submit")
    expect(page.locator("#cp-result")).to_have_text("Guardado: resuelta")
    expect(page.locator("#cp-next")).to_contain_text("Llamar al cliente para explicársela")
    page.click("#go-available")
    cc.until(lambda: _complaint(cc).state == ComplaintState.TOLD, timeout=30)
    expect(page.locator("#callback")).to_be_visible()  # the explanation call's screen pop
    expect(page.locator("#cp-title")).to_have_text(f"Reclamación {reference}")
    expect(page.locator("#cp-remedy")).to_have_text("Le devolvemos el cargo duplicado en tres días.")
    expect(page.locator("#answer-buttons")).to_be_visible()
    page.fill("#customer-words", "Le parece bien, espera la devolución.")
    page.click("#answer-accepts")
    expect(page.locator("#cp-answer")).to_contain_text("acepta la solución")
    expect(page.locator("#cp-next")).to_contain_text("Llamada de seguimiento")
    shot(page, "agent-complaints")

    followup = _owed(cc, CallbackKind.COMPLAINT_FOLLOWUP)
    with cc.services.db.session() as session:  # a week passes
        session.execute(update(Callback).where(Callback.id == followup.id).values(
            due_at=utcnow(), exclusive_until=utcnow() + timedelta(hours=1)))
    page.click("#go-available")
    network.set_behaviour(CUSTOMER, Answer(after=2.0, talk=60.0))
    cc.until(lambda: _owed(cc, CallbackKind.COMPLAINT_FOLLOWUP).state != CallbackState.QUEUED, jobs=False)
    expect(page.locator("#verify-buttons")).to_be_visible(timeout=15_000)
    cc.until(lambda: _owed(cc, CallbackKind.COMPLAINT_FOLLOWUP).state == CallbackState.DONE, timeout=30)

    boss = page.context.browser.new_context(viewport=LAPTOP, locale="en-GB").new_page()
    log_in(boss, cc.url, "sara")
    boss.goto(cc.url + f"/supervisor/complaints/{reference}")
    expect(boss.locator("#state")).to_have_text("told")
    expect(boss.locator("#next")).to_contain_text("record the follow-up's verdict")

    page.fill("#customer-words", "Ya me lo devolvieron, gracias.")
    page.click("#verify-satisfied")
    expect(page.locator("#cp-result")).to_have_text("Guardado: cerrada")
    expect(page.locator(f'#complaint-list li[data-reference="{reference}"]')).to_have_count(0)

    others = the_rest_of_the_register(cc)
    boss.reload()
    expect(boss.locator("#state")).to_have_text("closed")
    expect(boss.locator("#satisfied")).to_contain_text("yes — “Ya me lo devolvieron, gracias.”")
    for event in ("complaint-flagged", "reference-spoken", "complaint-resolved", "customer-told", "remedy-accepted",
                  "complaint-closed", "complaint-told", "complaint-followup"):
        expect(boss.locator("#timeline")).to_contain_text(event)
    shot(boss, "supervisor-complaint")
    boss.click("#nav-complaints")
    row = boss.locator(f"#complaint-{reference}")
    expect(row.locator("td.state")).to_contain_text("closed")
    expect(row.locator("td.satisfied")).to_have_text("yes")
    expect(boss.locator("#chain")).to_contain_text("Audit chain intact")
    shot(boss, "supervisor-complaints-register")
    expect(boss.locator(f"#complaint-{others['overdue']}")).to_have_attribute("data-flag", "overdue")
    expect(boss.locator(f"#complaint-{others['reopened']}")).to_contain_text("reopened 1×")
    boss.click("#nav-report")
    expect(boss.locator("#received")).to_have_text("4")
    expect(boss.locator("#in-time")).to_have_text("2")
    expect(boss.locator("#satisfied")).to_have_text("1 (50.0%)")
    expect(boss.locator("#reopened")).to_have_text("1")
    expect(boss.locator("#past-deadline")).to_have_text("1")
    expect(boss.locator("#share-3min")).to_have_text(re.compile(r"^\d+(\.\d)?%$"))
    shot(boss, "supervisor-report")


def the_rest_of_the_register(cc) -> dict[str, str]:
    """Other customers' complaints, so the register and the report show more than one life: one overdue, one
    resolved and waiting for its explanation call, one reopened after a follow-up that did not satisfy."""
    from test_complaint_steps import new_complaint

    from routing import complaint_life
    from routing.complaint_life import Actor

    def reference(complaint_id: int) -> str:
        with cc.services.db.session() as session:
            return session.get(Complaint, complaint_id).reference

    ana = Actor("ana")
    overdue = reference(new_complaint(cc.services, "ana", phone="+34600000101",
                                      summary="El router nuevo no llegó en la fecha prometida"))
    with cc.services.db.session() as session:
        session.execute(update(Complaint).where(Complaint.reference == overdue).values(
            due_at=utcnow() - timedelta(hours=3), first_due_at=utcnow() - timedelta(hours=3)))
    waiting = reference(new_complaint(cc.services, "ana", phone="+34600000102",
                                      summary="Le cambiaron la cita sin avisar"))
    complaint_life.resolve(cc.services, waiting, explanation="La cita se anotó en otro día.",
                           remedy="Una cita nueva esta semana.", cause="El calendario no avisa de los cambios.",
                           by=ana)
    reopened = reference(new_complaint(cc.services, "ana", phone="+34600000103",
                                       summary="La lavadora sigue perdiendo agua tras la reparación"))
    complaint_life.resolve(cc.services, reopened, explanation="El técnico no llevó la pieza.",
                           remedy="Una segunda visita sin coste.", cause="El parte no lista las piezas.", by=ana)
    complaint_life.record_answer(cc.services, reopened, accepted=True, note="", by=ana)
    complaint_life.verify(cc.services, reopened, satisfied=False, note="Sigue sin funcionar", by=ana)
    return {"overdue": overdue, "waiting": waiting, "reopened": reopened}
