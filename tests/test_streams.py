"""Live pages' streams as the web process serves them (voice.web under uvicorn), on real Redis and databases."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from test_agent_page import PASSWORD, agent_with_password
from test_supervisor import PEDRO, incoming_over_http

from directo.simulate import pages
from directo.simulate.pages import SESSION_COOKIE, Crowd, Page, session_cookie
from routing import agents as admin
from routing import events, roster
from voice import auth, streams
from voice.streams.stream import Out, Stream, event_order


@pytest.fixture
def crowd(live_server) -> Iterator[Crowd]:
    with Crowd(live_server.url) as pages:
        yield pages


def page_of(services, identity: str, *, board: bool = False, last: str | None = None) -> Page:
    return Page(identity, board, session_cookie(services.config.secret_key, identity), last=last)


def body(frame) -> dict:
    return json.loads(frame.data)


def opened(crowd: Crowd, page: Page) -> Page:
    crowd.open([page])
    crowd.wait_open([page])
    assert page.status == 200, page.error
    return page


def test_an_agent_page_is_pushed_its_presence_and_its_own_screen_pops_as_they_happen(services, crowd) -> None:
    roster.add_agent(services, "ana", "Ana", ["es"])
    roster.add_agent(services, "bob", "Bob", ["es"])
    ana = opened(crowd, page_of(services, "ana"))
    assert [body(f)["status"] for f in ana.named("state")] == ["offline"]

    admin.set_status(services, "ana", "available")
    events.publish(services.redis, "bob", "call-reserved", {"call_sid": "CA-not-yours"})
    events.publish(services.redis, "ana", "call-reserved", {"call_sid": "CA01", "callerName": "Lucía"})
    crowd.wait(lambda: ana.named("message"), 5, "ana's screen pop")

    states = [body(f) for f in ana.named("state")]
    assert [s["status"] for s in states] == ["offline", "available"]
    assert states[1]["v"] > 0 and states[1]["server_time"] > 0
    [pop] = ana.named("message")
    assert body(pop) == {"type": "call-reserved", "agent": "ana", "call_sid": "CA01", "callerName": "Lucía"}
    assert pop.event_id and event_order(pop.event_id) > (0, 0), "pops carry the id a page resumes from"


def test_a_page_coming_back_is_replayed_the_pops_it_missed_then_told_where_things_stand(services, crowd) -> None:
    roster.add_agent(services, "ana", "Ana", ["es"])
    first = opened(crowd, page_of(services, "ana"))
    events.publish(services.redis, "ana", "call-reserved", {"call_sid": "CA01"})
    crowd.wait(lambda: first.named("message"), 5, "the first pop")
    seen = first.named("message")[0].event_id
    # The page is reconnecting (its stream is gone) while two more calls are put through to Ana.
    events.publish(services.redis, "ana", "call-reserved", {"call_sid": "CA02"})
    events.publish(services.redis, "ana", "callback-reserved", {"callback_id": 7})
    admin.set_status(services, "ana", "away")

    back = opened(crowd, page_of(services, "ana", last=seen))
    assert [f.event for f in back.frames] == ["message", "message", "state"]
    assert [body(f).get("call_sid") or body(f)["callback_id"] for f in back.named("message")] == ["CA02", 7]
    assert body(back.frames[-1])["status"] == "away"
    fresh = opened(crowd, page_of(services, "ana"))
    assert [f.event for f in fresh.frames] == ["state"], "a page opened anew is not replayed old pops"


def test_streams_end_now_and_then_with_a_quiet_reconnect(app, services, crowd) -> None:
    app.config["STREAM_SECONDS"] = 1.0
    roster.add_agent(services, "ana", "Ana", ["es"])
    started = time.monotonic()
    ana = opened(crowd, page_of(services, "ana"))
    crowd.wait(lambda: ana.ended, 5, "the stream's end")
    assert 0.8 <= time.monotonic() - started < 4
    assert ana.frames[-1].event == "reconnect" and body(ana.frames[-1]) == {"after_ms": 0}


def test_a_fourth_page_of_one_person_closes_their_oldest_which_says_why(services, crowd) -> None:
    roster.add_agent(services, "ana", "Ana", ["es"])
    roster.add_agent(services, "bob", "Bob", ["es"])
    assert services.config.streams_per_person == 3
    bob = opened(crowd, page_of(services, "bob"))
    tabs = [opened(crowd, page_of(services, "ana")) for _ in range(4)]
    crowd.wait(lambda: tabs[0].ended, 5, "the oldest tab's end")
    assert tabs[0].frames[-1].event == "superseded"
    admin.set_status(services, "ana", "available")
    admin.set_status(services, "bob", "available")
    crowd.wait(lambda: all(len(t.named("state")) == 2 for t in tabs[1:] + [bob]), 5, "the others' next event")
    assert not any(t.ended for t in tabs[1:] + [bob])
    assert len(tabs[0].named("state")) == 1, "the closed tab gets nothing more"


def test_who_may_open_which_stream(services, live_server, crowd) -> None:
    roster.add_agent(services, "ana", "Ana", ["es"])
    roster.add_agent(services, "sara", "Sara", ["es"], role="supervisor")
    roster.add_agent(services, "gone", "Gone", ["es"])
    with services.db.session() as session:
        session.execute(text("UPDATE agents SET active = :no WHERE identity = 'gone'"), {"no": False})
    forged = Page("ana", False, session_cookie("not-the-secret", "ana"))
    refused = crowd.open([Page("nobody", False, ""), page_of(services, "ana", board=True), forged,
                          page_of(services, "gone")])
    crowd.wait(lambda: all(p.ended for p in refused), 10, "refusals")
    assert [p.status for p in refused] == [401, 403, 401, 401], "an agent's cookie opens no board: roles are on record"
    assert json.loads(refused[0].error) == {"error": "log in first"}
    assert json.loads(refused[3].error) == {"error": "log in again"}
    assert opened(crowd, page_of(services, "sara", board=True)).named("board")
    assert requests.post(live_server.url + "/agent/events", timeout=5).status_code == 405


def test_a_real_login_opens_the_agent_stream(services, live_server, crowd) -> None:
    agent_with_password(services, "ana")
    http = requests.Session()
    html = http.get(live_server.url + "/agent/login").text
    token = html.split('name="csrf_token" value="')[1].split('"')[0]
    http.post(live_server.url + "/agent/login", data={"identity": "ana", "password": PASSWORD, "csrf_token": token})
    page = opened(crowd, Page("ana", False, http.cookies[SESSION_COOKIE]))
    assert body(page.named("state")[0])["status"] == "offline"
    # The simulator's pages mint the cookie a login gives, and know the streams' paths, as a browser does.
    assert (pages.IDENTITY_KEY, pages.VERSION_KEY) == (auth.IDENTITY_KEY, auth.VERSION_KEY)
    assert (pages.AGENT_EVENTS, pages.BOARD_EVENTS) == (streams.AGENT_EVENTS, streams.BOARD_EVENTS)


def test_a_board_is_pushed_each_agents_change_and_whom_they_are_with(services, live_server, crowd) -> None:
    agent_with_password(services, "bea", status="available")
    roster.add_agent(services, "sara", "Sara", ["es"], role="supervisor")
    board = opened(crowd, page_of(services, "sara", board=True))
    [snapshot] = board.named("board")
    rows = body(snapshot)["agents"]
    assert [(a["identity"], a["status"]) for a in rows] == [("bea", "available"), ("sara", "offline")]

    sent = time.time()
    incoming_over_http(live_server.url, "CA09", PEDRO)
    crowd.wait(lambda: any(a.get("with") == PEDRO for f in board.named("agents") for a in body(f)), 5,
               "whom bea is with")
    changes = [a for f in board.named("agents") for a in body(f) if a["identity"] == "bea"]
    assert {"status": "reserved", "call": "CA09"}.items() <= changes[0].items()
    assert changes[0]["v"] > body(snapshot)["agents"][0]["v"], "a change is newer than the snapshot before it"
    assert board.named("agents")[0].at - sent < 1.0


def test_stopping_the_server_tells_every_page_to_come_back_spread_over_a_moment(services, live_server, crowd) -> None:
    for identity in ("ana", "bob"):
        roster.add_agent(services, identity, identity.title(), ["es"])
    pages = [opened(crowd, page_of(services, identity)) for identity in ("ana", "bob")]
    live_server.web.stop_streams()  # what the web worker does when the server is asked to stop
    crowd.wait(lambda: all(p.ended for p in pages), 5, "every stream's end")
    assert [(p.frames[-1].event, body(p.frames[-1])) for p in pages] == [("reconnect", {"after_ms": 3000})] * 2


def test_pages_start_over_when_the_process_loses_its_subscription(services, crowd) -> None:
    roster.add_agent(services, "ana", "Ana", ["es"])
    before = opened(crowd, page_of(services, "ana"))
    services.redis.client_kill_filter(_type="pubsub")  # the web process's one subscription is cut
    crowd.wait(lambda: before.ended, 5, "the stream's end")
    assert before.frames[-1].event == "reconnect"
    after = opened(crowd, page_of(services, "ana"))  # subscribed again by then
    admin.set_status(services, "ana", "away")
    crowd.wait(lambda: len(after.named("state")) == 2, 5, "the next event")


# --- what one page is sent, whatever order the frames reach its queue in ----------------------------------

frames = st.lists(st.tuples(st.sampled_from(["event", "state"]), st.integers(1, 12)), max_size=40)


@given(replayed=st.integers(0, 12), shown_state=st.integers(0, 12), arriving=frames)
def test_a_page_never_gets_an_event_twice_nor_a_state_older_than_one_it_has(replayed, shown_state, arriving) -> None:
    """Live frames queue from the moment a stream is open, while its replay and first state are read: whatever
    overlaps is dropped, so each pop reaches the page once and in order, and presence never goes back."""
    stream = Stream("ana", "seat", board=False, ends_at=0, sent={"event": (replayed, 0), "state": (shown_state, 0)})
    sent = [(kind, order) for kind, order in arriving if stream.fresh(Out(kind, (order, 0), b""))]
    pops = [order for kind, order in sent if kind == "event"]
    states = [order for kind, order in sent if kind == "state"]
    assert pops == sorted(set(pops)) and all(order > replayed for order in pops)
    assert states == sorted(states) and all(order >= shown_state for order in states)
    newest = max([order for kind, order in arriving if kind == "event"], default=0)
    assert (pops[-1] if pops else replayed) == max(replayed, newest), "the newest pop always gets through"
