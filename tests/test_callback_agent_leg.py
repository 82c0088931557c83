"""An agent is free only when their own leg has ended (DESIGN.md): a callback whose customer does not answer keeps
the agent until the agent's leg is over, or the next callback rings them while they still hear the first one."""

from __future__ import annotations

from test_callbacks import CUSTOMER, add_agent, callback_for, queue_one

from directo.core.states import AgentStatus, CallbackState
from routing import agents as admin
from routing.presence import presence
from standin import Answer, Busy


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
