"""Many callers at once against a real server and a real Redis: no agent ever gets two calls."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from conftest import incoming_over_http
from sqlalchemy import distinct, func, select
from test_incoming import add

from directo.core.models import Call, Callback
from routing.presence import presence

AGENTS = 12
CALLERS = 80


def test_concurrent_incoming_calls_never_give_an_agent_two_calls(services, live_server) -> None:
    for i in range(AGENTS):
        add(services, f"agent{i:02d}")
    url = live_server.url + "/voice/incoming"
    with ThreadPoolExecutor(max_workers=32) as pool:
        chosen = list(pool.map(lambda i: incoming_over_http(url, i), range(CALLERS)))
    connected = [c for c in chosen if c is not None]
    assert len(connected) == AGENTS, Counter(chosen)
    assert len(set(connected)) == AGENTS, "an agent was given two calls"
    with services.db.session() as session:
        outcomes = Counter(session.scalars(select(Call.outcome)).all())
        callbacks = session.scalar(select(func.count(distinct(Callback.phone))))
    assert outcomes == {"ringing": AGENTS, "callback": CALLERS - AGENTS}, "the others are promised a callback"
    assert callbacks == CALLERS - AGENTS
    for identity in connected:
        assert presence(services).state(identity)["status"] == "reserved"
