"""Dated calls we owe (the machinery promises and complaint resolutions use): the owner is rung first at the time,
another agent who speaks the language after the grace window; a call from the customer does not close them and
reaches the owner; the agent hears what is owed. End to end, through the stand-in and real jobs."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select, update

from directo.core.models import Agent, Call, Callback, Customer, utcnow
from directo.core.states import CallbackKind, CallbackState, CallOutcome
from directo.core.unit_of_work import work
from routing import callbacks, roster
from routing.dispatch import dispatch
from standin import Answer
from tests.test_callbacks import CUSTOMER, add_agent, callback_for


def promise(cc, owner: str, due_in: timedelta, grace: timedelta = timedelta(minutes=10),
            about: str = "el reembolso") -> int:
    """What the promise feature does when an agent promises a call: a dated callback owned by them."""
    with work(cc.services.db) as unit:
        owner_id = unit.session.scalar(select(Agent.id).where(Agent.identity == owner))
        customer = Customer(phone=CUSTOMER, name="Lucía Núñez", language="es", answered_calls=1)
        unit.session.add(customer)
        unit.session.flush()
        owed = callbacks.schedule(unit.session, CallbackKind.PROMISE, phone=CUSTOMER, language="es",
                                  customer_id=customer.id, owner_id=owner_id, due_at=unit.now + due_in,
                                  window=timedelta(minutes=30), grace=grace, now=unit.now, about=about,
                                  created_by=owner)
        return owed.id


def make_due(cc, callback_id: int, **moved: timedelta) -> None:
    """Time passes: the promise falls due (and, with `grace`, its owner's window runs out)."""
    now = utcnow()
    with cc.services.db.session() as session:
        session.execute(update(Callback).where(Callback.id == callback_id).values(
            due_at=now, exclusive_until=now + moved.get("grace", timedelta(minutes=10))))


def test_a_promise_rings_its_owner_at_its_time_who_hears_what_was_promised(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana")
    add_agent(cc.services, "bea")
    cc.standin.network.set_behaviour("client:ana", Answer(after=1.0, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, Answer(after=2.0, talk=30.0))
    owed = promise(cc, "ana", due_in=timedelta(hours=2))
    assert dispatch(cc.services) == [], "not before its time, though both agents are free"
    make_due(cc, owed)
    assert dispatch(cc.services) == [owed]
    cc.until(lambda: callback_for(cc.services).state == CallbackState.DONE, timeout=30)
    kept = callback_for(cc.services)
    assert kept.agent.identity == "ana" and kept.kind == CallbackKind.PROMISE
    leg = cc.standin.network.legs_to("client:ana")[0]
    said = json.dumps([e.detail for e in leg.find("verb") if e.detail.get("verb") == "Say"], ensure_ascii=False)
    assert "Llamada prometida a Lucía Núñez, sobre: el reembolso" in said
    assert "No dejó mensaje" not in said, "a promise has no recorded reason to miss"


def test_an_owner_who_is_away_when_it_falls_due_is_replaced_after_the_grace_window(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "ana", status="away")
    add_agent(cc.services, "bea")
    cc.standin.network.set_behaviour("client:bea", Answer(after=1.0, talk=None))
    cc.standin.network.set_behaviour(CUSTOMER, Answer(after=2.0, talk=30.0))
    owed = promise(cc, "ana", due_in=timedelta(hours=2))
    make_due(cc, owed)
    assert dispatch(cc.services) == [], "inside the grace window only its owner may keep it"
    make_due(cc, owed, grace=timedelta(0))
    assert dispatch(cc.services) == [owed]
    cc.until(lambda: callback_for(cc.services).state == CallbackState.DONE, timeout=30)
    assert callback_for(cc.services).agent.identity == "bea"


def test_a_customer_who_calls_before_the_promise_reaches_its_owner_and_the_promise_stays(callcenter) -> None:
    cc = callcenter
    add_agent(cc.services, "bea")  # idle longest: she would take a stranger's call
    add_agent(cc.services, "ana")
    cc.standin.network.set_behaviour("client:ana", Answer(after=1.0, talk=5.0))
    cc.standin.network.set_behaviour("client:bea", Answer(after=1.0, talk=5.0))
    owed = promise(cc, "ana", due_in=timedelta(hours=2))
    call = cc.place_call(CUSTOMER).wait(timeout=20)
    with cc.services.db.session() as session:
        record = session.scalar(select(Call).where(Call.call_sid == call.sid))
        assert record.agent.identity == "ana" and record.outcome == CallOutcome.ANSWERED
    assert callback_for(cc.services).id == owed and callback_for(cc.services).state == CallbackState.QUEUED, \
        "what was promised for a date still has to be said"


def test_a_call_back_and_a_promise_are_told_apart(services) -> None:
    """Nobody free: a customer with a promise for Thursday is still promised a call within minutes."""
    roster.add_agent(services, "ana", "Ana", ["es"])
    now = utcnow()
    with work(services.db) as unit:
        owner = unit.session.scalar(select(Agent.id))
        callbacks.schedule(unit.session, CallbackKind.PROMISE, phone=CUSTOMER, language="es", customer_id=None,
                           owner_id=owner, due_at=now + timedelta(days=2), window=timedelta(minutes=30),
                           grace=timedelta(minutes=10), now=now)
        assert callbacks.open_callback(unit.session, CUSTOMER) is None
        queued, _ = callbacks.queue(unit.session, services.config, phone=CUSTOMER, language="es", customer_id=None,
                                    origin_call_id=None, preferred_agent_id=owner, now=now)
        assert callbacks.open_callback(unit.session, CUSTOMER).id == queued.id
        assert callbacks.served_by_calling_in(unit.session, CUSTOMER, now) == [queued.id]
