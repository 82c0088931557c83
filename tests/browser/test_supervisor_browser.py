"""The supervisor console in a real headless Chromium, on calls placed through the Twilio stand-in's phone network."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select
from test_agent_browser import CHROMIUM, SCREENSHOTS, browser_page  # noqa: F401  (the fixture, reused as is)
from test_agent_page import PASSWORD, agent_with_password
from test_callbacks import callback_for, queue_one

from directo.core.models import Call, Customer, Recording
from recordings.complaints import flag
from routing import agents as admin
from routing.presence import presence
from standin import Answer
from voice.supervisor import bp

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")
LUCIA, PEDRO, MARTA = "+34600111222", "+34600333444", "+34600777888"


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"supervisor-{name}.png"))


def answered_call(cc, caller: str) -> str:
    """A caller reaches a person, they talk, both hang up; the agent is made available again (no wrap-up wait)."""
    call = cc.place_call(caller).wait(timeout=20)
    cc.until(lambda: _outcome(cc, call.sid) == "answered" and _ended(cc, call.sid), jobs=False)
    for identity in ("ana", "bea"):
        if presence(cc.services).state(identity).get("status") == "wrapup":
            admin.set_status(cc.services, identity, "available")
    return call.sid


def _outcome(cc, sid: str) -> str | None:
    with cc.services.db.session() as session:
        return session.scalar(select(Call.outcome).where(Call.call_sid == sid))


def _reason_stored(cc) -> bool:
    recording_id = callback_for(cc.services, MARTA).reason_recording_id
    with cc.services.db.session() as session:
        return recording_id is not None and session.get(Recording, recording_id).state == "stored"


def _ended(cc, sid: str) -> bool:
    with cc.services.db.session() as session:
        return session.scalar(select(Call.ended_at).where(Call.call_sid == sid)) is not None


def test_supervisor_sees_the_day_live_filters_exports_and_plays_recordings(callcenter, browser_page) -> None:  # noqa: F811
    from playwright.sync_api import expect

    cc, page = callcenter, browser_page
    if "supervisor" not in cc.app.blueprints:
        cc.app.register_blueprint(bp)
    agent_with_password(cc.services, "sara", role="supervisor")
    for identity in ("ana", "bea"):
        agent_with_password(cc.services, identity, status="available")
        cc.standin.network.set_behaviour(f"client:{identity}", Answer(after=1.0, talk=90.0))
    for caller in (LUCIA, PEDRO):
        cc.standin.network.set_behaviour(caller, Answer(talk=None))
    first = answered_call(cc, LUCIA)
    with cc.services.db.session() as session:  # as an agent would have noted on the screen pop
        session.scalar(select(Customer).where(Customer.phone == LUCIA)).name = "Lucía Pérez"
    answered_call(cc, PEDRO)
    answered_call(cc, LUCIA)  # back to her previous agent
    complaint = flag(cc.services, first, "ana", summary="Charged twice for March")
    cc.run_jobs()

    page.goto(cc.url + "/agent/login")
    page.fill("#identity", "sara")
    page.fill("#password", PASSWORD)
    page.click("#log-in")
    page.goto(cc.url + "/supervisor/")
    expect(page.locator("#live")).to_have_text("live")
    expect(page.locator("#fig-calls")).to_have_text("3")
    expect(page.locator("#fig-previous")).to_have_text("100%")
    rows = page.locator("#board-agents tbody tr")
    expect(rows.filter(has_text="Bea").locator("td.state")).to_have_text("available")

    # A call arrives and stays up: the board changes without a reload.
    cc.standin.network.set_behaviour("client:ana", Answer(after=1.0, talk=None))
    cc.standin.network.set_behaviour("client:bea", Answer(after=1.0, talk=None))
    live = cc.place_call(PEDRO)
    on_call = rows.filter(has_text="on a call")
    expect(on_call).to_have_count(1, timeout=15_000)
    expect(on_call.locator("td").nth(2)).to_have_text(PEDRO)

    # Everyone is busy or away: Marta is promised a callback and leaves her reason.
    free = "ana" if presence(cc.services).state("ana")["status"] == "available" else "bea"
    admin.set_status(cc.services, free, "away")
    callback = queue_one(cc, MARTA)
    cc.until(lambda: _reason_stored(cc))
    expect(page.locator("#waiting")).to_have_text("1", timeout=10_000)
    expect(page.locator("#oldest")).not_to_have_text("—")
    page.wait_for_timeout(300)
    shot(page, "board")

    page.click("#nav-calls")
    expect(page.locator("#call-log tbody tr")).to_have_count(5)
    expect(page.locator("#call-log")).to_contain_text("answered by previous agent")
    expect(page.locator("#call-log")).to_contain_text(complaint.reference)
    expect(page.locator("#call-log")).to_contain_text("Lucía Pérez")
    shot(page, "calls")
    page.select_option("select[name=agent]", "ana")
    page.click("#apply")
    expect(page).to_have_url(re.compile(r"agent=ana"))
    ana_rows = page.locator("#call-log tbody tr").count()
    assert 1 <= ana_rows < 5
    expect(page.locator("#call-log tbody")).not_to_contain_text("Bea")
    exported = page.request.get(cc.url + page.locator("#export").get_attribute("href"))
    assert exported.ok and exported.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(exported.text())))
    assert len(table) == ana_rows and {row["agent"] for row in table} == {"ana"}
    page.select_option("select[name=agent]", "")
    page.select_option("select[name=outcome]", "callback")
    page.click("#apply")
    expect(page.locator("#call-log tbody tr")).to_have_count(1)

    page.locator("#call-log tbody a").first.click()
    expect(page.locator("#outcome")).to_have_text("callback")
    expect(page.locator("#timeline")).to_contain_text("callback-queued")
    audio = page.locator("audio").first
    expect(audio).to_have_count(1)
    playable = page.evaluate("""async () => {
        const audio = document.querySelector('audio');
        audio.load();
        for (let i = 0; i < 100 && audio.readyState < 1 && !audio.error; i++) await new Promise(r => setTimeout(r, 50));
        return {ready: audio.readyState, duration: audio.duration, error: audio.error && audio.error.code};
    }""")
    assert playable["error"] is None and playable["ready"] >= 1 and playable["duration"] > 0, playable
    shot(page, "call")

    page.click("#nav-complaints")
    expect(page.locator("#chain")).to_contain_text("Audit chain intact")
    expect(page.locator("#complaints")).to_contain_text(complaint.reference)
    expect(page.locator("#complaints")).to_contain_text("Charged twice for March")
    shot(page, "complaints")

    page.click("#nav-callbacks")
    row = page.locator(f"#callback-{callback.id}")
    expect(row).to_contain_text(MARTA)
    expect(row.locator("audio")).to_have_count(1)
    shot(page, "callbacks")
    row.locator("input[name=reason]").last.fill("Marta emailed us instead")
    row.locator("button.danger").click()
    expect(page.locator(".note")).to_have_text(f"callback {callback.id} cancelled")
    expect(page.locator(f"#callback-{callback.id}")).to_have_count(0)

    page.click("#nav-agents")
    expect(page.locator("#agents")).to_contain_text("sara")
    shot(page, "agents")
    assert not live.root.done.is_set(), "Pedro's call was still up while the board showed it"
