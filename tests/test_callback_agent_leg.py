"""An agent is free only when their own leg has ended (DESIGN.md): a callback whose customer does not answer keeps
the agent until the agent's leg is over, or the next callback rings them while they still hear the first one."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_callbacks import CUSTOMER, add_agent, callback_for, queue_one

from directo.core.config import Config
from directo.core.states import AgentStatus, CallbackState
from routing import agents as admin
from routing.presence import presence
from standin import Answer, Busy

OTHER = "+34600555222"


@pytest.fixture
def config(config: Config) -> Config:
    return replace(config, callback_attempt_wrapup_seconds=1)


def test_an_agent_whose_callback_customer_did_not_answer_is_held_until_their_own_leg_ends(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana", status="offline")
    queue_one(cc, CUSTOMER)
    cc.standin.network.set_behaviour("client:ana", lambda: Answer(after=0.5, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, Busy())
    cc.standin.scheduler.time_scale = 0.5  # slow time: ana hears "customer missed" for seconds
    admin.set_status(cc.services, "ana", "available")
    cc.until(lambda: callback_for(cc.services).state == CallbackState.QUEUED
             and callback_for(cc.services).attempts == 1)
    leg = cc.standin.network.legs_to("client:ana")[0]
    status = presence(cc.services).state("ana")["status"]
    assert leg.ended_at is None, "ana's leg is still up, hearing that the customer could not be reached"
    assert status != AgentStatus.AVAILABLE, "a callback due now would ring her a second time"


def test_the_next_callback_waits_for_the_end_of_the_agents_leg_then_a_short_wrap_up(callcenter) -> None:
    """The pair from issue 17: callback A, the agent answers, the customer does not; callback B, waiting, went to
    the same agent 20 ms later while they still heard A. B waits until A's agent leg has ended, then the agent's
    CALLBACK_ATTEMPT_WRAPUP_SECONDS, and only then rings them (whose softphone would have ignored it before)."""
    cc = callcenter
    add_agent(cc.services, "ana", status="offline")
    queue_one(cc, CUSTOMER)  # A, the oldest
    queue_one(cc, OTHER)  # B
    cc.standin.network.set_behaviour("client:ana", lambda: Answer(after=0.5, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, Busy())
    cc.standin.network.set_behaviour(OTHER, Answer(after=1.0, talk=10.0))
    cc.standin.scheduler.time_scale = 0.2  # ana hears "the customer could not be reached" for about a second
    admin.set_status(cc.services, "ana", "available")
    cc.until(lambda: callback_for(cc.services, CUSTOMER).attempts == 1
             and callback_for(cc.services, CUSTOMER).state == CallbackState.QUEUED)
    first = cc.standin.network.legs_to("client:ana")[0]
    assert first.ended_at is None and callback_for(cc.services, OTHER).state == CallbackState.QUEUED, \
        "B is not handed to ana while her leg of A is still up"
    cc.until(lambda: first.ended_at is not None, jobs=False)
    heard = [e.detail for e in first.find("verb", sid=first.sid)][-2:]
    assert [verb["verb"] for verb in heard] == ["Say", "Hangup"], "one sentence, then her leg ends"
    assert heard[0].get("text") == "El cliente no ha contestado."
    cc.until(lambda: presence(cc.services).state("ana").get("status") == AgentStatus.WRAPUP, jobs=False)
    cc.until(lambda: callback_for(cc.services, OTHER).state == CallbackState.DONE, timeout=30)
    second = next(leg for leg in cc.standin.network.legs_to("client:ana") if leg is not first)
    assert callback_for(cc.services, OTHER).agent.identity == "ana"
    assert second.created_at >= first.ended_at, "never two calls at once"
    assert not second.find("client.ignored"), "her softphone was free when B rang"
