"""Many callers at once against a real server and a real Redis: no agent ever gets two calls."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from conftest import ACCOUNT_SID, AUTH_TOKEN
from sqlalchemy import distinct, func, select
from test_incoming import add
from twilio.request_validator import RequestValidator

from directo.core.models import Call, Callback
from routing.presence import presence

AGENTS = 12
CALLERS = 80


def test_concurrent_incoming_calls_never_give_an_agent_two_calls(services, live_server) -> None:
    for i in range(AGENTS):
        add(services, f"agent{i:02d}")
    url = live_server.url + "/voice/incoming"
    validator = RequestValidator(AUTH_TOKEN)

    def call(i: int) -> str | None:
        params = {"CallSid": f"CA{i:032d}", "From": f"+346001{i:05d}", "To": "+34910000000",
                  "AccountSid": ACCOUNT_SID, "CallStatus": "ringing"}
        response = requests.post(url, data=params, headers={
            "X-Twilio-Signature": validator.compute_signature(url, params)}, timeout=30)
        assert response.status_code == 200, response.text
        identity = ET.fromstring(response.text).find("Dial/Client/Identity")
        return None if identity is None else identity.text

    with ThreadPoolExecutor(max_workers=32) as pool:
        chosen = list(pool.map(call, range(CALLERS)))
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
