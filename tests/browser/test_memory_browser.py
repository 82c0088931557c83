"""The customer memory in two real browsers: one agent corrects a caller's name and writes notes; the next agent to
take a call from that customer sees the corrected name, the standing notes and the first call's notes before
answering, and the promise made on the first call."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import TwilioWebhooks
from test_agent_browser import CHROMIUM, LAPTOP, SCREENSHOTS, OverHttp, chromium, log_in
from test_agent_page import CALLER, agent_with_password
from test_incoming import dial_of

from directo.core.models import utcnow
from routing.presence import presence

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")


@pytest.fixture
def config(config):
    """Open around the clock: the first agent's promise is accepted whenever the test runs."""
    return replace(config, business_hours="Mon-Sun 00:00-24:00", time_zone="Europe/Madrid")


@pytest.fixture
def two_desks(live_server) -> Iterator[tuple]:
    """Two agents' browsers, side by side."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = chromium(playwright)
        contexts = [browser.new_context(viewport=LAPTOP, locale="es-ES") for _ in range(2)]
        pages = [context.new_page() for context in contexts]
        for page in pages:
            page.set_default_timeout(10_000)
        yield tuple(pages)
        for context in contexts:
            context.close()
        browser.close()


def _agent_leg(webhooks: TwilioWebhooks, services, ringing, sid: str, agent: str, leg: str,
               status: str = "in-progress") -> None:
    webhooks.post(dial_of(ringing).find("Client").get("statusCallback"), {
        "CallSid": leg, "ParentCallSid": sid, "CallStatus": status, "To": f"client:{agent}",
        "AccountSid": services.config.twilio_account_sid, "Direction": "outbound-dial"})


def test_the_next_agent_sees_the_corrected_name_and_what_was_noted_before_answering(services, live_server,
                                                                                    two_desks) -> None:
    from playwright.sync_api import expect

    ana, bob = two_desks
    agent_with_password(services, "ana")
    agent_with_password(services, "bob")
    log_in(ana, live_server.url, "ana")
    ana.click("#go-available")
    expect(ana.locator("#status-pill")).to_have_text("Disponible")
    webhooks = TwilioWebhooks(OverHttp(), base=live_server.url)  # type: ignore[arg-type]

    first = webhooks.incoming("CA01", from_=CALLER)
    expect(ana.locator("#caller-name")).to_have_text("Cliente sin nombre")
    expect(ana.locator("#contacts")).to_contain_text("Ningún contacto anterior")
    _agent_leg(webhooks, services, first, "CA01", "ana", "CA" + "1" * 32)
    expect(ana.locator("#status-pill")).to_have_text("En llamada")
    ana.click("#profile-edit summary")
    ana.fill("#profile-name", "Lucía Núñez")
    ana.fill("#profile-say-as", "lu-ZÍ-a NÚ-ñez")
    ana.fill("#profile-notes", "Viuda desde enero: hablar despacio. No llamar los domingos.")
    ana.click("#save-profile")
    expect(ana.locator("#profile-result")).to_have_text("Ficha guardada")
    expect(ana.locator("#caller-name")).to_have_text("Lucía Núñez")
    ana.fill("#notes", "Pide el reembolso del cargo duplicado de marzo; se lo confirmo el jueves.")
    ana.click("#save-notes")
    expect(ana.locator("#notes-result")).to_have_text("Guardado")
    due = (utcnow() + timedelta(days=2)).replace(hour=9, minute=30)
    ana.fill("#promise-at", due.strftime("%Y-%m-%dT%H:%M"))
    ana.fill("#promise-about", "confirmar el reembolso de marzo")
    ana.click("#make-promise")
    expect(ana.locator("#promise-result")).to_have_text(re.compile(r"^Prometida para el .* a las 09:30, hora de "
                                                                   r"España \(Madrid\)\. "))
    webhooks.dial_complete(dial_of(first).get("action"), "CA01", "completed", duration=240)
    _agent_leg(webhooks, services, first, "CA01", "ana", "CA" + "1" * 32, status="completed")
    webhooks.status("CA01", "completed", duration=243)
    expect(ana.locator("#status-pill")).to_have_text("Cierre de llamada")

    log_in(bob, live_server.url, "bob")
    bob.click("#go-available")
    expect(bob.locator("#status-pill")).to_have_text("Disponible")
    second = webhooks.incoming("CA02", from_=CALLER)  # Ana is still writing up: Bob takes it
    assert dial_of(second).find("Client/Identity").text == "bob"
    expect(bob.locator("#status-pill")).to_have_text("Sonando")  # not answered yet: this is what he reads first
    expect(bob.locator("#caller-name")).to_have_text("Lucía Núñez")
    expect(bob.locator("#say-as-text")).to_have_text("lu-ZÍ-a NÚ-ñez")
    expect(bob.locator("#standing-notes")).to_have_text("Viuda desde enero: hablar despacio. No llamar los domingos.")
    last = bob.locator("#contacts li").first
    expect(last).to_contain_text("Ana")
    expect(last).to_contain_text("atendida")
    expect(last.locator(".contact-notes")).to_have_text(
        "Pide el reembolso del cargo duplicado de marzo; se lo confirmo el jueves.")
    expect(last).to_contain_text("confirmar el reembolso de marzo")
    expect(bob.locator("#owed")).to_contain_text("Promesa de Ana: confirmar el reembolso de marzo")
    assert presence(services).state("bob")["status"] == "reserved"
    bob.locator("#pop").screenshot(path=str(_screenshot("agent-screen-pop-history")))


def _screenshot(name: str):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"
