"""The agent page in a real headless Chromium against the real app on a real HTTP server."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from conftest import TwilioWebhooks
from sqlalchemy import select
from test_agent_page import CALLER, PASSWORD, agent_with_password, caller_with_history
from test_incoming import dial_of

from directo.core.models import Call
from routing import agents as admin
from routing.presence import presence

CHROMIUM = Path("/usr/bin/chromium")
# The README's pictures are refreshed only when asked (DIRECTO_SCREENSHOTS=docs/screenshots): a test run must not
# leave a clone with changed files. Otherwise they go to a scratch directory, still taken, so a page that fails
# to render still fails the test.
SCREENSHOTS = Path(os.environ.get("DIRECTO_SCREENSHOTS") or tempfile.mkdtemp(prefix="directo-screenshots-"))
LAPTOP = {"width": 1366, "height": 768}
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium "
                                                              "(scripts/setup installs it when run as root)")


class OverHttp:
    """The webhook helper's client, but over real HTTP: the page and Twilio reach the same running server."""

    def post(self, url: str, data: dict[str, str], headers: dict[str, str]) -> SimpleNamespace:
        response = requests.post(url, data=data, headers=headers, timeout=10)
        return SimpleNamespace(status_code=response.status_code, get_data=lambda as_text=True: response.text)


def chromium(playwright):
    """Debian's chromium, headless, quiet: no network of its own besides the pages it is sent to."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    )


@pytest.fixture
def browser_page(live_server) -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = chromium(playwright)
        context = browser.new_context(viewport=LAPTOP, locale="es-ES")
        page = context.new_page()
        page.set_default_timeout(10_000)
        # The pages' Content-Security-Policy must let them do all they do: any refusal fails the test.
        refusals: list[str] = []
        page.on("console", lambda message: refusals.append(message.text)
                if "Content Security Policy" in message.text else None)
        yield page
        context.close()
        browser.close()
        assert refusals == [], refusals


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"agent-{name}.png"))


def log_in(page, base: str, identity: str, screenshot: str | None = None) -> None:
    page.goto(base + "/agent/login")
    page.fill("#identity", identity)
    page.fill("#password", PASSWORD)
    if screenshot:
        shot(page, screenshot)
    page.click("#log-in")
    page.wait_for_url(base + "/agent/")


def test_agent_takes_a_call_with_the_caller_known_flags_a_complaint_and_wraps_up(
        services, twilio, live_server, browser_page, app) -> None:
    from playwright.sync_api import expect

    caller_with_history(services, twilio)
    presence(services).transition("ana", "offline")
    page = browser_page
    log_in(page, live_server.url, "ana", screenshot="login")
    expect(page.locator("#status-pill")).to_have_text("Desconectado")
    expect(page.locator("#softphone-state")).to_have_text(re.compile(r"^Teléfono desconectado: TWILIO_API_KEY"))
    page.click("#go-available")
    expect(page.locator("#status-pill")).to_have_text("Disponible")
    assert presence(services).state("ana")["status"] == "available"

    webhooks = TwilioWebhooks(OverHttp(), base=live_server.url)  # type: ignore[arg-type]
    ringing = webhooks.incoming("CA02", from_=CALLER)
    assert dial_of(ringing).find("Client/Identity").text == "ana"
    # The screen pop arrives pushed over the event stream: no softphone, no Twilio, no click.
    expect(page.locator("#caller-name")).to_have_text("Lucía Pérez")
    expect(page.locator("#caller-number")).to_have_text(CALLER)
    expect(page.locator("#caller-language")).to_have_text("español")
    expect(page.locator("#previous-calls")).to_have_text("1 con nosotros · 1 contigo")
    expect(page.locator("#open-complaints")).to_contain_text("R-2026-000042")
    expect(page.locator("#open-complaints")).not_to_contain_text("R-2026-000041")
    expect(page.locator("#status-pill")).to_have_text("Sonando")

    leg_url = dial_of(ringing).find("Client").get("statusCallback")
    # The helper's agent_leg() reuses one leg CallSid per status, which the first call already used: a new leg here.
    webhooks.post(leg_url, {"CallSid": "CA" + "e" * 32, "ParentCallSid": "CA02", "CallStatus": "in-progress",
                            "To": "client:ana", "AccountSid": services.config.twilio_account_sid,
                            "Direction": "outbound-dial"})
    expect(page.locator("#status-pill")).to_have_text("En llamada")
    page.fill("#complaint-summary", "Cobro duplicado en la factura de marzo")
    page.click("#flag-complaint")
    if any(rule.rule == "/complaints/flag" for rule in app.url_map.iter_rules()):
        expect(page.locator("#complaint-result")).to_have_text(re.compile(r"^Referencia: R-\d{4}-\d{6}$"))
    else:  # the complaints endpoint is another issue's; until it exists the page must say the flag failed
        expect(page.locator("#complaint-result")).to_have_text(re.compile(r"^Error: "))
    page.fill("#notes", "Pide que le devuelvan el cargo duplicado.")
    page.click("#save-notes")
    expect(page.locator("#notes-result")).to_have_text("Guardado")
    shot(page, "screen-pop")
    with services.db.session() as session:
        assert session.scalar(select(Call.notes).where(Call.call_sid == "CA02")).startswith("Pide que")

    webhooks.dial_complete(dial_of(ringing).get("action"), "CA02", "completed", duration=95)
    webhooks.post(leg_url, {"CallSid": "CA" + "e" * 32, "ParentCallSid": "CA02", "CallStatus": "completed",
                            "To": "client:ana", "AccountSid": services.config.twilio_account_sid,
                            "Direction": "outbound-dial"})  # the agent's own leg ends: their wrap-up starts
    webhooks.status("CA02", "completed", duration=98)
    expect(page.locator("#status-pill")).to_have_text("Cierre de llamada")
    expect(page.locator("#wrapup-left")).to_have_text(re.compile(r"^Cierre: quedan (2\d|30) s$"))
    shot(page, "wrapup")
    page.click("#ready")
    expect(page.locator("#status-pill")).to_have_text("Disponible")
    expect(page.locator("#wrapup")).to_be_hidden()
    assert presence(services).state("ana")["status"] == "available"


def test_lost_event_stream_shows_a_banner_that_clears_on_reconnect(services, live_server, browser_page, app) -> None:
    from playwright.sync_api import expect

    app.config["STREAM_SECONDS"] = 1.0  # streams end every second, so the broken route is hit at once
    agent_with_password(services, "tom", "en", status="available")
    page = browser_page
    log_in(page, live_server.url, "tom")
    expect(page.locator("#status-pill")).to_have_text("Available")  # Tom's first language is English
    page.wait_for_timeout(2500)
    expect(page.locator("#disconnected")).to_be_hidden()  # routine reconnects every second show nothing
    page.route("**/agent/events", lambda route: route.abort())
    expect(page.locator("#disconnected")).to_be_visible()
    expect(page.locator("#disconnected")).to_contain_text("No connection to the server")
    shot(page, "disconnected")
    page.unroute("**/agent/events")
    expect(page.locator("#disconnected")).to_be_hidden()


def test_a_pop_sent_while_the_page_was_reconnecting_is_shown_when_it_is_back(
        services, twilio, live_server, browser_page, app) -> None:
    from playwright.sync_api import expect

    app.config["STREAM_SECONDS"] = 1.0  # streams end every second, so the broken route is hit at once
    caller_with_history(services, twilio)  # Lucía, whom Ana helped before
    agent_with_password(services, "bob", status="available")
    admin.set_status(services, "ana", "away")
    page = browser_page
    log_in(page, live_server.url, "bob")
    webhooks = TwilioWebhooks(OverHttp(), base=live_server.url)  # type: ignore[arg-type]
    first = webhooks.incoming("CA10", from_="+34600999888")
    expect(page.locator("#caller-number")).to_have_text("+34600999888")
    leg_url = dial_of(first).find("Client").get("statusCallback")
    bobs_leg = {"CallSid": "CA" + "b" * 32, "ParentCallSid": "CA10", "To": "client:bob",
                "AccountSid": services.config.twilio_account_sid, "Direction": "outbound-dial"}
    webhooks.post(leg_url, {**bobs_leg, "CallStatus": "in-progress"})  # Bob answers
    webhooks.dial_complete(dial_of(first).get("action"), "CA10", "completed", duration=30)
    webhooks.post(leg_url, {**bobs_leg, "CallStatus": "completed"})  # his leg ends: his wrap-up starts
    page.click("#ready")
    expect(page.locator("#status-pill")).to_have_text("Disponible")

    page.route("**/agent/events*", lambda route: route.abort())
    expect(page.locator("#disconnected")).to_be_visible(timeout=15_000)
    webhooks.incoming("CA11", from_=CALLER)  # Lucía calls while Bob's page cannot hear
    page.unroute("**/agent/events*")
    expect(page.locator("#disconnected")).to_be_hidden(timeout=40_000)
    expect(page.locator("#caller-name")).to_have_text("Lucía Pérez")
    expect(page.locator("#status-pill")).to_have_text("Sonando")
    page.reload()  # a page reloaded in the middle of a call shows that call
    expect(page.locator("#caller-name")).to_have_text("Lucía Pérez")


def test_one_tab_too_many_closes_the_oldest_which_says_so_and_can_take_over(services, live_server, browser_page):
    from playwright.sync_api import expect

    agent_with_password(services, "tom", "en", status="available")
    first = browser_page
    log_in(first, live_server.url, "tom")
    expect(first.locator("#status-pill")).to_have_text("Available")
    tabs = [first.context.new_page() for _ in range(3)]
    for tab in tabs:
        tab.goto(live_server.url + "/agent/")
        expect(tab.locator("#status-pill")).to_have_text("Available")
    expect(first.locator("#superseded")).to_be_visible()
    expect(first.locator("#superseded")).to_contain_text("open in another tab")
    expect(first.locator("#disconnected")).to_be_hidden()
    shot(first, "superseded")
    first.click("#use-here")  # this tab takes over; the oldest of the others steps down
    expect(first.locator("#superseded")).to_be_hidden()
    expect(tabs[0].locator("#superseded")).to_be_visible()
    admin.set_status(services, "tom", "away")
    expect(first.locator("#status-pill")).to_have_text("Away")
