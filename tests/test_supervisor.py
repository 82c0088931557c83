"""The supervisor console's server side, on real databases and Redis, with calls made through the real webhooks."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from conftest import ACCOUNT_SID, AUTH_TOKEN
from sqlalchemy import insert, select, text
from test_agent_page import PASSWORD, AgentPage, agent_with_password
from test_incoming import complete_call
from twilio.request_validator import RequestValidator

from directo.core.models import Agent, AuditEntry, Call, Callback, CallEvent, Recording, utcnow
from recordings.complaints import flag
from routing import agents as admin
from routing.presence import presence
from voice.supervisor import MAX_REASON, bp, call_log
from voice.supervisor.call_log import Filters, page

LUCIA = "+34600111222"
PEDRO = "+34600333444"


@pytest.fixture
def console(app):
    """The app with the console registered (the lead registers it in create_app; until then, here)."""
    if "supervisor" not in app.blueprints:
        app.register_blueprint(bp)
    return app


@pytest.fixture
def sup(console, services) -> AgentPage:
    agent_with_password(services, "sara", role="supervisor")
    browser = AgentPage(console.test_client())
    assert browser.login("sara").status_code == 302
    return browser


def form(browser: AgentPage, path: str, data: dict[str, str]):
    return browser.client.post(path, data={**data, "csrf_token": browser.csrf})


def simulated_day(services, twilio) -> None:
    """Ana answers Lucía twice (the second time as her previous agent), Bea answers Pedro, one caller abandons."""
    agent_with_password(services, "ana", status="available")
    complete_call(twilio, twilio.incoming("CA01", from_=LUCIA), "CA01", "ana")
    admin.set_status(services, "ana", "available")
    agent_with_password(services, "bea", status="available")
    complete_call(twilio, twilio.incoming("CA02", from_=LUCIA), "CA02", "ana")
    admin.set_status(services, "ana", "away")
    complete_call(twilio, twilio.incoming("CA03", from_=PEDRO), "CA03", "bea")
    admin.set_status(services, "bea", "available")
    twilio.incoming("CA04", from_="+34600555666")
    twilio.status("CA04", "completed")


def incoming_over_http(base: str, sid: str, caller: str) -> None:
    """An incoming call webhook over real HTTP, signed as Twilio signs it."""
    url, params = base + "/voice/incoming", {"CallSid": sid, "AccountSid": ACCOUNT_SID, "From": caller,
                                             "To": "+34910000000", "CallStatus": "ringing", "Direction": "inbound"}
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
    assert requests.post(url, data=params, headers={"X-Twilio-Signature": signature}, timeout=10).ok


def test_only_logged_in_supervisors_reach_any_console_page(console, services, sup) -> None:
    gets = [r.rule.replace("<int:call_id>", "1").replace("<path:filename>", "supervisor.css")
            for r in console.url_map.iter_rules() if r.endpoint.startswith("supervisor.") and "GET" in r.methods]
    posts = [r.rule.replace("<int:callback_id>", "1").replace("<identity>", "ana")
             for r in console.url_map.iter_rules() if r.endpoint.startswith("supervisor.") and "POST" in r.methods]
    assert len(gets) >= 10 and len(posts) >= 6
    anonymous = console.test_client()
    agent_with_password(services, "ana")
    agent = AgentPage(console.test_client())
    agent.login("ana")
    for path in gets:
        assert anonymous.get(path).headers.get("Location", "").endswith("/agent/login"), path
        assert agent.get(path).status_code == 403, path
        assert sup.get(path).status_code in (200, 404), path  # 404: call 1 does not exist
    for path in posts:
        assert form(agent, path, {"reason": "x"}).status_code == 403, path
    with services.db.session() as session:  # a deactivated supervisor's session stops working at once
        session.execute(text("UPDATE agents SET active = :no WHERE identity = 'sara'"), {"no": False})
    ended = sup.get("/supervisor/calls")
    assert ended.status_code == 302 and ended.headers["Location"].endswith("/agent/login")


def test_call_log_shows_who_answered_whom_and_filters_by_agent_caller_outcome_and_date(services, twilio, sup) -> None:
    simulated_day(services, twilio)
    flag(services, "CA03", "bea", summary="billed twice")
    html = sup.get("/supervisor/calls").get_data(as_text=True)
    rows = re.findall(r"<tr class=\"outcome-([a-z-]+)\">", html)
    assert rows == ["abandoned", "answered-by-another-agent", "answered-by-previous-agent",
                    "answered-by-another-agent"], "newest first, with the previous-agent distinction"
    assert re.search(r"R-\d{4}-\d+", html), "the complaint reference is on the row"

    def sids(**args) -> list[str]:
        body = sup.get("/supervisor/calls.csv", query_string=args).get_data(as_text=True)
        return [row["call_sid"] for row in csv.DictReader(io.StringIO(body))]

    assert sids(agent="ana") == ["CA02", "CA01"]
    assert sids(caller="600 111 222") == ["CA02", "CA01"], "the number as a person types it"
    assert sids(outcome="previous") == ["CA02"]
    assert sids(outcome="another") == ["CA03", "CA01"]
    assert sids(outcome="abandoned") == ["CA04"]
    today = utcnow().date()
    assert sids(**{"from": str(today), "to": str(today)}) == ["CA04", "CA03", "CA02", "CA01"]
    assert sids(**{"from": str(today + timedelta(days=1))}) == []
    for bad, message in (({"from": "yesterday"}, "YYYY-MM-DD"), ({"agent": "nobody"}, "no agent"),
                         ({"outcome": "lost"}, "outcome must be"), ({"after": "garbage"}, "cursor")):
        response = sup.get("/supervisor/calls", query_string=bad)
        assert response.status_code == 400 and message in response.get_data(as_text=True), bad
    assert sup.get("/supervisor/calls.csv", query_string={"agent": "nobody"}).status_code == 400


def test_csv_export_carries_every_column_of_the_filtered_set(services, twilio, sup) -> None:
    simulated_day(services, twilio)
    response = sup.get("/supervisor/calls.csv", query_string={"agent": "bea", "outcome": "another"})
    assert response.mimetype == "text/csv" and response.is_streamed
    assert "attachment" in response.headers["Content-Disposition"]
    (row,) = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert row["caller"] == PEDRO and row["agent"] == "bea" and row["outcome"] == "answered by another agent"
    assert float(row["waited_s"]) >= 0 and row["direction"] == "inbound"
    assert datetime.fromisoformat(row["started_at"]).tzinfo is not None


def _bulk_calls(services, count: int, same_second: int) -> list[int]:
    """`count` calls, `same_second` of them sharing one started_at: the keyset must break ties by id."""
    base = datetime(2026, 11, 1, 12, tzinfo=UTC)
    rows = [{"call_sid": f"CA{n:06}", "direction": "inbound", "caller": PEDRO, "language": "es",
             "outcome": "abandoned", "dial_attempts": 0,
             "started_at": base if n < same_second else base + timedelta(seconds=n)} for n in range(count)]
    with services.db.engine.begin() as connection:
        connection.execute(insert(Call.__table__), rows)
    with services.db.session() as session:
        return list(session.scalars(select(Call.id).order_by(Call.started_at.desc(), Call.id.desc())))


def test_keyset_pages_cover_every_call_once_in_order_even_with_equal_start_times(services, sup) -> None:
    expected = _bulk_calls(services, 260, same_second=75)
    seen, after, pages = [], None, 0
    while True:
        html = sup.get("/supervisor/calls", query_string={"after": after} if after else {}).get_data(as_text=True)
        seen += [int(i) for i in re.findall(r'href="/supervisor/calls/(\d+)"', html)]
        pages += 1
        found = re.search(r'id="older" href="[^"]*after=([^"&]+)', html)
        if not found:
            break
        after = requests.utils.unquote(found.group(1))
    assert pages == 6 and seen == expected
    body = sup.get("/supervisor/calls.csv").get_data(as_text=True)
    assert len(body.splitlines()) == 261


def _plan(services, filters: Filters, after: bool) -> str:
    with services.db.session() as session:
        cursor = None
        if after:
            _, cursor = page(session, Filters(), size=1)
            cursor = cursor or "2026-11-01T12:00:00+00:00~5"
        where = call_log._conditions(session, filters)
        if cursor:
            where.append(call_log._before(call_log.decode_cursor(cursor)))
        statement = call_log._query(where).limit(51)
        dialect = services.db.engine.dialect
        sql = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        if dialect.name == "postgresql":
            session.execute(text("SET LOCAL enable_seqscan = off"))
            session.execute(text("SET LOCAL enable_sort = off"))
            return "\n".join(r[0] for r in session.execute(text("EXPLAIN " + sql)))
        return "\n".join(str(r[-1]) for r in session.execute(text("EXPLAIN QUERY PLAN " + sql)))


@pytest.mark.parametrize("filters", [Filters(), Filters(agent="ana"), Filters(caller=PEDRO),
                                     Filters(outcome="abandoned"), Filters(outcome="previous"),
                                     Filters(start=datetime(2026, 11, 1).date(), end=datetime(2026, 11, 2).date(),
                                             agent="ana")], ids=repr)
@pytest.mark.parametrize("deep", [False, True], ids=["first-page", "deep-page"])
def test_every_log_page_is_an_index_range_scan_in_order_so_its_cost_does_not_grow_with_the_log(
        services, sup, filters, deep) -> None:
    """Why the log stays fast at 1,000,000 calls (bench/call_log.py has the timings): no page sorts or scans the
    table; each reads its 51 rows off an index already in the page's order."""
    agent_with_password(services, "ana")
    _bulk_calls(services, 30, same_second=5)
    plan = _plan(services, filters, deep)
    assert "TEMP B-TREE" not in plan and "Sort" not in plan, plan
    assert not re.search(r"SCAN calls(?! USING)|Seq Scan on calls", plan), plan
    assert re.search(r"ix_calls_\w+", plan), plan


def test_complaints_register_shows_acknowledgement_state_and_the_audit_chain(services, twilio, sup) -> None:
    simulated_day(services, twilio)
    first = flag(services, "CA01", "ana", summary="rude reply")
    flag(services, "CA03", "bea", summary="billed twice")
    html = sup.get("/supervisor/complaints").get_data(as_text=True)
    assert "Audit chain intact" in html and first.reference in html and "billed twice" in html
    assert html.count('class="pending"') == 2, "neither spoken nor SMS-delivered yet"
    body = sup.get("/supervisor/complaints.csv", query_string={"agent": "ana"}).get_data(as_text=True)
    (row,) = csv.DictReader(io.StringIO(body))
    assert row["reference"] == first.reference and row["phone"] == LUCIA and row["summary"] == "rude reply"
    with services.db.session() as session:  # someone edits the record behind the app's back
        entry = session.scalar(select(AuditEntry).order_by(AuditEntry.id).limit(1))
        entry.payload = entry.payload.replace("rude", "kind")
        broken = entry.id
    html = sup.get("/supervisor/complaints").get_data(as_text=True)
    assert f"AUDIT CHAIN BROKEN at entry {broken}" in html


def _queued_callback(services, origin_sid: str, minutes: float) -> int:
    with services.db.session() as session:
        origin = session.scalar(select(Call).where(Call.call_sid == origin_sid))
        callback = Callback(phone=origin.caller, language="es", origin_call_id=origin.id, state="queued",
                            promised_by=utcnow() + timedelta(minutes=minutes), due_at=utcnow() + timedelta(hours=1))
        session.add(callback)
        session.flush()
        return callback.id


def test_callback_queue_flags_promises_at_risk_and_changes_are_kept_with_their_reason(services, twilio, sup) -> None:
    simulated_day(services, twilio)
    admin.set_status(services, "bea", "away")
    at_risk, later = _queued_callback(services, "CA04", 2), _queued_callback(services, "CA03", 30)
    html = sup.get("/supervisor/callbacks").get_data(as_text=True)
    assert re.search(rf'<tr class="at-risk" id="callback-{at_risk}">', html)
    assert re.search(rf'<tr class="" id="callback-{later}">', html)

    assert form(sup, f"/supervisor/callbacks/{later}/cancel", {"reason": " "}).status_code == 400
    too_long = form(sup, f"/supervisor/callbacks/{later}/cancel", {"reason": "x" * (MAX_REASON + 1)})
    assert too_long.status_code == 400 and f"{MAX_REASON} characters" in too_long.get_data(as_text=True)
    assert form(sup, f"/supervisor/callbacks/{later}/reassign", {"agent": "zed", "reason": "x"}).status_code == 400
    assert sup.client.post(f"/supervisor/callbacks/{later}/cancel", data={"reason": "dup"}).status_code == 400, \
        "no CSRF token, no change"
    assert form(sup, f"/supervisor/callbacks/{later}/cancel", {"reason": "customer wrote in"}).status_code == 302
    admin.set_status(services, "bea", "available")
    assert form(sup, f"/supervisor/callbacks/{at_risk}/reassign",
                {"agent": "bea", "reason": "bea knows the case"}).status_code == 302
    with services.db.session() as session:
        cancelled, reassigned = session.get(Callback, later), session.get(Callback, at_risk)
        assert cancelled.state == "cancelled" and cancelled.close_reason == "cancelled by sara: customer wrote in"
        assert reassigned.preferred_agent_id == session.scalar(select(Agent.id).where(Agent.identity == "bea"))
        assert reassigned.state == "reserved", "dispatched at once to the free agent"
        audit = {e.kind: e.detail for e in session.scalars(select(CallEvent).where(CallEvent.kind.like("callback-%")))}
    assert audit["callback-cancelled"] == {"callback_id": later, "by": "sara", "reason": "customer wrote in"}
    assert audit["callback-reassigned"] == {"callback_id": at_risk, "to": "bea", "by": "sara",
                                            "reason": "bea knows the case"}
    refused = form(sup, f"/supervisor/callbacks/{at_risk}/cancel", {"reason": "too late"})
    assert refused.status_code == 409 and "only queued callbacks" in refused.get_data(as_text=True)
    longest = _queued_callback(services, "CA01", 30)  # the longest reason fits the record on every database
    assert form(sup, f"/supervisor/callbacks/{longest}/cancel", {"reason": "y" * MAX_REASON}).status_code == 302


def test_call_detail_has_the_timeline_notes_and_a_seekable_player(services, twilio, sup, config) -> None:
    simulated_day(services, twilio)
    audio = bytes(range(256)) * 64
    stored = Path(config.recordings_dir) / "cd" / "call.mp3"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(audio)
    with services.db.session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == "CA02"))
        call.notes = "asked about the refund"
        session.add(Recording(twilio_sid="RE1", call_sid="CA02", kind="call", source_url="https://x",
                              state="stored", path="cd/call.mp3", format="mp3", sha256="ab" * 32))
        call_id = call.id
    html = sup.get(f"/supervisor/calls/{call_id}").get_data(as_text=True)
    assert "asked about the refund" in html and "answered by previous agent" in html
    kinds = re.findall(r"<tr><td>[\d:.]+</td><td>([a-z-]+)</td>", html)
    assert kinds[0] == "incoming" and "agent-reserved" in kinds and "call-ended" in kinds, kinds
    src = re.search(r'<audio controls preload="metadata" src="([^"]+)"', html).group(1)
    part = sup.get(src, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.data == audio[100:200] and part.mimetype == "audio/mpeg"
    assert sup.get("/supervisor/calls/999999").status_code == 404


def test_agent_management_adds_resets_changes_languages_and_deactivates(console, services, sup) -> None:
    assert form(sup, "/supervisor/agents", {"identity": "dan", "name": "Dan", "languages": "es, en",
                                            "password": "short"}).status_code == 400
    assert form(sup, "/supervisor/agents", {"identity": "dan", "name": "Dan", "languages": "es, en",
                                            "role": "agent", "password": PASSWORD}).status_code == 302
    dan = AgentPage(console.test_client())
    assert dan.login("dan").status_code == 302
    assert form(sup, "/supervisor/agents/dan/password", {"password": "a brand new one"}).status_code == 302
    assert AgentPage(console.test_client()).login("dan").status_code == 401
    assert AgentPage(console.test_client()).login("dan", "a brand new one").status_code == 302
    assert form(sup, "/supervisor/agents/dan/languages", {"languages": "en"}).status_code == 302
    assert form(sup, "/supervisor/agents/dan/languages", {"languages": "xx"}).status_code == 400
    admin.set_status(services, "dan", "available")
    refused = form(sup, "/supervisor/agents/dan/languages", {"languages": "es"})
    assert refused.status_code == 409 and "taking calls" in refused.get_data(as_text=True)
    assert form(sup, "/supervisor/agents/dan/active", {"active": "0"}).status_code == 302
    assert presence(services).state("dan")["status"] == "offline", "out of routing"
    assert AgentPage(console.test_client()).login("dan", "a brand new one").status_code == 401
    assert form(sup, "/supervisor/agents/sara/active", {"active": "0"}).status_code == 400
    with services.db.session() as session:
        assert session.scalar(select(Agent.languages_csv).where(Agent.identity == "dan")) == "en"
    assert "Reactivate" in sup.get("/supervisor/agents").get_data(as_text=True)


def test_board_snapshot_shows_who_is_on_a_call_with_whom_and_todays_figures(services, twilio, sup) -> None:
    simulated_day(services, twilio)
    twilio.incoming("CA05", from_=PEDRO)  # Bea is rung for Pedro
    board = sup.get("/supervisor/board.json").json
    states = {a["identity"]: (a["status"], a["with"]) for a in board["agents"]}
    assert states["bea"] == ("reserved", PEDRO) and states["ana"] == ("away", None)
    figures = board["figures"]
    assert figures["calls"] == 4, "the ringing call is not counted until it ends one way or another"
    assert figures["answered_fast"] == {"count": 3, "of": 4, "percent": 75}
    assert figures["previous_agent"] == {"count": 1, "of": 1, "percent": 100}
