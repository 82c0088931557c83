"""The end of a wrap-up hands the agent the oldest waiting callback, with no one pressing anything."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from test_callbacks import add_agent, callback_for

from directo.core.config import Config
from directo.core.models import utcnow
from routing.callback_report import flag
from routing.presence import presence
from standin import Answer

WAITING = "+34600888777"


@pytest.fixture
def config(config: Config) -> Config:
    return replace(config, wrapup_seconds=1)


def test_end_of_wrap_up_dispatches_the_waiting_callback(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana")
    cc.standin.network.set_behaviour("client:ana", Answer(after=1.0, talk=300.0))
    cc.standin.network.set_behaviour(WAITING, Answer(after=1.0, talk=20.0, speech_seconds=3.0,
                                                     hangup_after_speech=True))
    first = cc.place_call("+34600111000")
    cc.standin.network.wait_until(lambda net: presence(cc.services).state("ana")["status"] == "busy", timeout=15)
    cc.place_call(WAITING).wait(timeout=20)  # ana is on a call: this caller is promised a callback
    assert callback_for(cc.services, WAITING).state == "queued"
    first.wait(timeout=20)  # ana's conversation ends; a 1-second wrap-up begins
    assert presence(cc.services).state("ana")["status"] == "wrapup"
    cc.standin.network.set_behaviour(WAITING, Answer(after=1.0, talk=20.0))
    cc.until(lambda: callback_for(cc.services, WAITING).state == "done", timeout=30)
    assert callback_for(cc.services, WAITING).agent.identity == "ana"


@pytest.mark.parametrize(
    ("state", "minutes_left", "expected"),
    [("queued", 10, None), ("queued", 2, "AT RISK"), ("reserved", -1, "LATE"), ("missed", 5, "MISSED"),
     ("done", -5, None)],
)
def test_promises_about_to_be_missed_are_flagged(state, minutes_left, expected) -> None:
    now = utcnow()
    assert flag(state, now + timedelta(minutes=minutes_left), now) == expected
