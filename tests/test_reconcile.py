"""Agents held by calls that are over are freed, though the webhook that should have freed them never came."""

from __future__ import annotations

import time

from sqlalchemy import select
from test_callbacks import CUSTOMER, add_agent, callback_for, queue_one, waiting_callback_and_ana

from directo.core.models import Call, Customer
from routing import agents as admin
from routing.presence import presence
from routing.reconcile import reconcile_agents
from standin import Answer, Busy


def held_since(cc, identity: str, seconds_ago: float) -> None:
    """Time passes: the agent was reserved this long ago."""
    cc.services.redis.hset(f"{presence(cc.services).prefix}agent:{identity}", "reserved_at", time.time() - seconds_ago)


def reconcile(cc) -> list[str]:
    job = cc.services.queue.enqueue(reconcile_agents)
    cc.run_jobs()
    return job.return_value()


def record(cc, sid: str) -> Call:
    with cc.services.db.session() as session:
        call = session.scalar(select(Call).where(Call.call_sid == sid))
        session.expunge(call)
        return call


def test_an_agent_whose_call_ended_while_the_app_was_unreachable_is_released(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana")
    cc.standin.network.set_behaviour("client:ana", Answer(after=1.0, talk=30.0))
    cc.standin.faults.unreachable("/voice/dial-complete")  # the app is redeploying when the call ends:
    cc.standin.faults.unreachable("/voice/status")  # Twilio's tries fail and it moves on
    placed = cc.place_call(CUSTOMER)
    cc.until(lambda: presence(cc.services).state("ana").get("status") == "busy", jobs=False)
    cc.standin.faults.unreachable("/voice/agent-leg")  # and the end of ana's own leg
    sid = placed.wait(timeout=20).root.sid
    assert presence(cc.services).state("ana")["status"] == "busy", "nobody told the app the call ended"
    assert reconcile(cc) == [], "a call younger than a ring plus a minute is left alone"

    held_since(cc, "ana", 600)
    assert reconcile(cc) == ["ana"]
    assert presence(cc.services).state("ana")["status"] == "wrapup", "as if the status callback had come"
    call = record(cc, sid)
    assert call.outcome == "answered" and call.ended_at is not None
    with cc.services.db.session() as session:
        assert session.scalar(select(Customer.answered_calls).where(Customer.phone == CUSTOMER)) == 1
    assert reconcile(cc) == []


def test_an_agent_on_a_long_conversation_is_left_alone_and_twilio_asked_sparingly(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana")
    cc.standin.network.set_behaviour("client:ana", Answer(after=1.0, talk=None))  # talks until the caller hangs up
    call = cc.place_call(CUSTOMER, caller_hangup_after=3600)
    cc.until(lambda: presence(cc.services).state("ana").get("status") == "busy", jobs=False)
    held_since(cc, "ana", 1800)
    assert reconcile(cc) == [] and reconcile(cc) == []
    assert presence(cc.services).state("ana")["status"] == "busy"
    assert record(cc, call.root.sid).ended_at is None
    assert cc.standin.api.requests["GET /Calls/<sid>.json"] == 1, "asked once, not again within five minutes"


def test_an_agent_reserved_for_a_call_that_was_never_recorded_is_freed(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana")
    idle_since = float(presence(cc.services).state("ana")["since"])
    # A web process reserved ana and died before recording the call (Twilio's retry went elsewhere).
    assert presence(cc.services).reserve("CA" + "f" * 32, ["ana"], time.time() - 600)
    assert reconcile(cc) == ["ana"]
    state = presence(cc.services).state("ana")
    assert state["status"] == "available" and float(state["since"]) == idle_since, "idle time kept"


def test_an_agent_whose_callback_ended_while_the_app_was_unreachable_is_released(callcenter) -> None:
    cc = callcenter
    waiting_callback_and_ana(cc, customer_answers_after=2.0, talk=30.0)
    cc.standin.faults.unreachable("/voice/callbacks/customer-complete")  # the end of the callback is never heard
    cc.standin.faults.unreachable("/voice/callbacks/agent-status", count=10)
    admin.set_status(cc.services, "ana", "available")
    cc.until(lambda: (leg := cc.standin.network.legs_to(CUSTOMER)[-1:]) and leg[0].ended
             and leg[0].parent is not None and leg[0].parent.ended)
    assert callback_for(cc.services).state == "dialing", "nobody told the app the promise was kept"
    assert presence(cc.services).state("ana")["status"] == "busy"

    held_since(cc, "ana", 600)
    assert reconcile(cc) == ["ana"]
    callback = callback_for(cc.services)
    assert callback.state == "done" and callback.close_reason.startswith("kept"), "the customer did answer"
    assert presence(cc.services).state("ana")["status"] == "wrapup"


def test_an_agent_still_hearing_that_their_callback_customer_did_not_answer_is_not_freed(callcenter) -> None:
    """The customer's outcome sent the callback back in line, but ana's own leg is still up: only Twilio's word that
    the leg is over frees her (to her short wrap-up), never the record alone."""
    cc = callcenter
    add_agent(cc.services, "ana", status="offline")
    queue_one(cc)
    cc.standin.network.set_behaviour("client:ana", lambda: Answer(after=0.5, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, Busy())
    cc.standin.faults.unreachable("/voice/callbacks/agent-status", count=10)  # the end of ana's leg is never heard
    cc.standin.scheduler.time_scale = 1.0  # real time: ana hears "the customer did not answer" for seconds
    admin.set_status(cc.services, "ana", "available")
    cc.until(lambda: callback_for(cc.services).state == "queued" and callback_for(cc.services).attempts == 1,
             timeout=30)
    leg = cc.standin.network.legs_to("client:ana")[0]
    held_since(cc, "ana", 600)
    assert leg.ended_at is None and reconcile(cc) == [], "her leg is up, as Twilio says"
    assert presence(cc.services).state("ana")["status"] == "busy"
    cc.until(lambda: leg.ended_at is not None, jobs=False)
    cc.services.redis.delete(f"{presence(cc.services).prefix}asked:{leg.sid}")  # five minutes later
    assert reconcile(cc) == ["ana"]
    assert presence(cc.services).state("ana")["status"] == "wrapup", "her short wrap-up after the attempt"
