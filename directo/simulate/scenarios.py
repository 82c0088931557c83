"""Scripted scenarios (`--scenario NAME`): the promises Directo makes, each played out and checked end to end."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from directo.core.models import Agent, Callback, Complaint, Recording, utcnow
from directo.core.models import Call as CallRow
from directo.core.states import (
    CLOSED,
    MESSAGE_STATUS,
    AgentStatus,
    CallbackKind,
    CallbackState,
    ComplaintState,
    SmsState,
    ToldVia,
)
from recordings import audit, register
from routing import agents, compliance, promise_report
from routing.errors import Conflict
from routing.presence import presence
from standin import Answer
from standin.model import Call

from .population import Caller, Population
from .summary import Summary, person_leg

if TYPE_CHECKING:
    from .run import Simulation


@dataclass
class Check:
    what: str
    ok: bool
    detail: str = ""


@dataclass
class Outcome:
    name: str
    summary: Summary
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed,
                "checks": [{"what": c.what, "ok": c.ok, "detail": c.detail} for c in self.checks]}

    def text(self) -> str:
        lines = [f"Scenario {self.name}: {'PASSED' if self.passed else 'FAILED'}"]
        lines += [f"  [{'ok' if c.ok else 'FAILED'}] {c.what}" + (f" ({c.detail})" if c.detail else "")
                  for c in self.checks]
        return "\n".join(lines)


def eventually(condition: Callable[[], Any], timeout: float) -> Any:
    """Poll (real seconds) until `condition()` is truthy; its last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def _answered_by(sim: Simulation, call: Call) -> str | None:
    leg = person_leg(call, {f"client:{identity}" for identity in sim.agents})
    return leg.to.removeprefix("client:") if leg else None


def _row(sim: Simulation, model: type, *where: Any) -> Any:
    with sim.svc.db.session() as session:
        found = session.scalars(select(model).where(*where)).first()
        if found is not None:
            session.expunge(found)
        return found


def _caller(sim: Simulation) -> Caller:
    return Population(sim.rng, repeat_share=0.0, other_language_share=0.0).next_caller()


def returning_caller(sim: Simulation) -> Outcome:
    """A caller's second call goes to the agent they spoke to before, although another agent idled longer."""
    first, second = sim.staff(2)
    for identity in (first, second):
        sim.network.set_behaviour(f"client:{identity}", Answer(after=2, talk=30))
    caller = _caller(sim)
    before = sim.wait(sim.place(caller))
    spoke_to = _answered_by(sim, before)
    sim.desk.idle()
    other = second if spoke_to == first else first
    states = {identity: presence(sim.svc).state(identity) for identity in (first, second)}
    known_idle = float(states.get(spoke_to or "", {}).get("since") or 0)
    other_idle = float(states[other].get("since") or 0)
    again = sim.wait(sim.place(caller))
    sim.settle(5)
    outcome = Outcome("returning-caller", sim.summary())
    outcome.checks = [
        Check("the first call is answered by a person", spoke_to is not None, f"by {spoke_to}"),
        Check("both agents are free before the second call",
              all(s.get("status") == AgentStatus.AVAILABLE for s in states.values()), str({k: v.get("status")
                                                                                for k, v in states.items()})),
        Check("the other agent has been idle longer", other_idle < known_idle, f"{other} idle since {other_idle}, "
                                                                               f"{spoke_to} since {known_idle}"),
        Check("the second call goes to the previous agent", _answered_by(sim, again) == spoke_to,
              f"answered by {_answered_by(sim, again)}"),
    ]
    return outcome


def all_busy_callback(sim: Simulation) -> Outcome:
    """Every agent busy: the caller is promised a callback, leaves a reason, and is called back by an agent."""
    (agent,) = sim.staff(1)
    sim.network.set_behaviour(f"client:{agent}", Answer(after=1, talk=60))
    busy = sim.place(_caller(sim))
    sim.network.wait_until(lambda _: person_leg(busy, {f"client:{agent}"}) is not None, timeout=30)
    caller = _caller(sim)
    waiting = sim.wait(sim.place(caller))
    row = _row(sim, CallRow, CallRow.call_sid == waiting.sid)
    promised = row and _row(sim, Callback, Callback.origin_call_id == row.id)
    sim.wait(busy)

    def closed() -> Callback | None:
        found = promised and _row(sim, Callback, Callback.id == promised.id)
        return found if found is not None and found.state in CLOSED else None

    final = eventually(closed, sim.options.settle_seconds) if promised else None
    sim.settle(10)
    spoken = [e for e in waiting.find("verb") if e["verb"] in ("Say", "Play")]
    recorded = [e for e in waiting.find("verb") if e["verb"] == "Record"]
    reached = [leg for leg in sim.network.calls if leg.to == caller.number and leg.answered_at is not None]
    outcome = Outcome("all-busy-callback", sim.summary())
    outcome.checks = [
        Check("the busy agent is not offered a second call", person_leg(waiting, {f"client:{agent}"}) is None),
        Check("the caller is promised a callback", promised is not None,
              f"callback {getattr(promised, 'id', None)}, call outcome {getattr(row, 'outcome', None)}"),
        Check("the caller hears when", bool(spoken) and (not recorded or spoken[0].seq < recorded[0].seq)),
        Check("the reason is recorded", bool(recorded) and bool(promised and (promised.reason_recording_sid
                                                                              or promised.reason_recording_id))),
        Check("the callback is kept by an agent", final is not None and final.state == CallbackState.DONE,
              f"state {getattr(final, 'state', None)}"),
        Check("the customer answers the callback", bool(reached)),
    ]
    return outcome


def _complaint_flagged(sim: Simulation) -> tuple[str, Caller, Call, CallRow | None, Complaint | None]:
    """One agent and a caller; the agent flags a complaint part-way through the conversation."""
    (agent,) = sim.staff(1)
    # A three-minute conversation: the agent flags it part-way through, with seconds to spare (in real time
    # too) before the agent hangs up, however busy the machine running the simulation is.
    sim.network.set_behaviour(f"client:{agent}", Answer(after=1, talk=180))
    sim.desk.complaint_rate = 1.0
    caller = _caller(sim)
    call = sim.wait(sim.place(caller))
    sim.desk.complaint_rate = 0.0
    row = _row(sim, CallRow, CallRow.call_sid == call.sid)
    complaint = row and eventually(lambda: _row(sim, Complaint, Complaint.call_id == row.id), 5)
    return agent, caller, call, row, complaint


def complaint_acknowledged(sim: Simulation) -> Outcome:
    """The agent flags a complaint; the caller hears its reference, gets it by SMS, and the call is recorded."""
    sim.desk.resolve_complaints = False
    agent, caller, call, row, complaint = _complaint_flagged(sim)
    reference = getattr(complaint, "reference", None) or ""
    delivered = eventually(lambda: [m for m in sim.network.messages if m.to == caller.number
                                    and MESSAGE_STATUS.get(m.status) == SmsState.DELIVERED], sim.options.settle_seconds)
    stored = eventually(lambda: _row(sim, Recording, Recording.call_sid == call.sid,
                                     Recording.stored_at.is_not(None)), sim.options.settle_seconds)
    sim.settle(5)
    bridged = person_leg(call, {f"client:{agent}"})
    after_agent = [e for e in call.find("verb") if e["verb"] in ("Say", "Play")
                   and bridged is not None and bridged.ended_at is not None and e.at >= bridged.ended_at]
    complaint = row and _row(sim, Complaint, Complaint.call_id == row.id)
    outcome = Outcome("complaint-acknowledged", sim.summary())
    outcome.checks = [
        Check("the agent's flag gives a reference", bool(reference), reference),
        Check("the caller hears the reference after the agent hangs up",
              bool(after_agent) and getattr(complaint, "spoken_at", None) is not None,
              "; ".join(e.get("text", "") for e in after_agent)[:120]),
        Check("the SMS with the reference is delivered", any(reference and reference in m.body for m in delivered),
              f"{len(delivered)} delivered"),
        Check("the call recording is stored", stored is not None and bool(stored.path) and Path(stored.path).exists()),
    ]
    return outcome


def _complaint_life(sim: Simulation, name: str, satisfied: bool) -> Outcome:
    """A complaint's whole life with the clock sped up: flagged, resolved by its owner, explained to the customer on
    the owner's call, and a week later (the simulator moves the follow-up's date to now) followed up."""
    sim.desk.habits = replace(sim.desk.habits, resolve_after=(30.0, 60.0), accepts_remedy=1.0,
                              satisfied=1.0 if satisfied else 0.0)
    agent, caller, call, row, flagged = _complaint_flagged(sim)
    sim.network.set_behaviour(caller.number, Answer(after=2, talk=60))  # the customer picks up when we call
    outcome = Outcome(name, sim.summary())
    if flagged is None:
        outcome.checks = [Check("the agent's flag gives a reference", False, f"call {call.sid}")]
        return outcome

    def now() -> Complaint:
        return _row(sim, Complaint, Complaint.id == flagged.id)

    told = eventually(lambda: (c := now()).remedy_accepted is not None and c, sim.options.settle_seconds)
    followup = eventually(lambda: _row(sim, Callback, Callback.complaint_id == flagged.id,
                                       Callback.kind == CallbackKind.COMPLAINT_FOLLOWUP), 5)
    if followup is not None:
        sim.fast_forward(followup.id)  # a week later
    final = eventually(lambda: (c := now()).state in (ComplaintState.CLOSED, ComplaintState.REOPENED) and c,
                       sim.options.settle_seconds) or now()
    sim.settle(5)
    calls = {kind: _row(sim, Callback, Callback.complaint_id == flagged.id, Callback.kind == kind)
             for kind in (CallbackKind.COMPLAINT_TOLD, CallbackKind.COMPLAINT_FOLLOWUP)}
    made_by = {kind: getattr(cb, "agent_id", None) for kind, cb in calls.items()}
    with sim.svc.db.session() as session:
        trail = [e.event for e in audit.entries(session, flagged.id)]
        intact = audit.verify(session).intact
        listed = register.row(session, session.get(Complaint, flagged.id))
        month = compliance.report(session, flagged.flagged_at.strftime("%Y-%m"))
    outcome.summary = sim.summary()
    verdict = "complaint-closed" if satisfied else "complaint-reopened"
    life = ["complaint-flagged", "complaint-resolved", "customer-told", "remedy-accepted", verdict]
    outcome.checks = [
        Check("the agent's flag gives a reference, owned by that agent",
              bool(flagged.reference) and flagged.owner_id == getattr(row, "agent_id", None), flagged.reference),
        Check("the owner writes the resolution", final.resolved_by == agent, f"by {final.resolved_by}"),
        Check("the owner calls the customer to explain it, and the customer accepts the remedy",
              told is not None and final.told_via == ToldVia.CALL and final.told_by == agent
              and made_by[CallbackKind.COMPLAINT_TOLD] == flagged.owner_id and final.remedy_accepted is True,
              f"told via {final.told_via} by {final.told_by}"),
        Check("a week later the owner calls again to ask whether the remedy worked",
              getattr(calls[CallbackKind.COMPLAINT_FOLLOWUP], "state", None) == CallbackState.DONE
              and made_by[CallbackKind.COMPLAINT_FOLLOWUP] == flagged.owner_id,
              f"follow-up {getattr(calls[CallbackKind.COMPLAINT_FOLLOWUP], 'state', None)}"),
        Check("closed as satisfied" if satisfied else "reopened: back to its owner with a new due date",
              (final.state, final.satisfied) == ((ComplaintState.CLOSED, True) if satisfied else
                                                 (ComplaintState.REOPENED, False))
              and (satisfied or (final.owner_id == flagged.owner_id and final.due_at > flagged.due_at)),
              f"{final.state}, satisfied {final.satisfied}, due {final.due_at:%Y-%m-%d}"),
        Check("the register shows it", listed["state"] == final.state and listed["satisfied"] == satisfied,
              f"{listed['state']}, next: {listed['next_step']}"),
        Check("the month's report counts it", month["complaints_verified"] >= 1 and (
            month["complaints_satisfied_at_verification"] >= 1 if satisfied else month["complaints_reopened"] >= 1),
              f"verified {month['complaints_verified']}, reopened {month['complaints_reopened']}"),
        Check("every step is in the audit log, and the chain holds",
              [e for e in trail if e in life] == life and intact, " > ".join(e for e in trail if e in life)),
    ]
    return outcome


# "I will call you in two hours with the answer": the promise the scenarios make, in simulated seconds.
PROMISE_AFTER = 2 * 3600.0


def _promised_on_a_call(sim: Simulation, owner: str, other: str) -> tuple[Caller, Call, int]:
    """The owner takes a new caller's call (the other agent is away meanwhile) and, during it, promises to call
    back in two simulated hours; the customer will answer that call."""
    agents.set_status(sim.svc, other, AgentStatus.AWAY)
    sim.desk.promise_rate = 0.0  # only the scripted promise
    for identity in (owner, other):
        sim.network.set_behaviour(f"client:{identity}", Answer(after=1, talk=120))
    caller = _caller(sim)
    call = sim.place(caller)
    sim.network.set_behaviour(caller.number, Answer(after=3, talk=60))
    sim.network.wait_until(lambda _: person_leg(call, {f"client:{owner}"}) is not None, timeout=30)
    promised = sim.desk.clockwork.promise(call.sid, owner, PROMISE_AFTER, "the refund of the March invoice")
    sim.wait(call)
    return caller, call, promised


def _kept(sim: Simulation, promised: int, after: float) -> Any:
    """Wait (real seconds) for the promise to be kept or missed, through the simulated hours before it."""
    timeout = after * sim.options.time_scale + sim.options.settle_seconds
    return eventually(lambda: (found := _row(sim, Callback, Callback.id == promised)) is not None
                      and found.state in CLOSED and found, timeout)


def _keeper(sim: Simulation, promised: int) -> str | None:
    """The agent who took the promise's call."""
    with sim.svc.db.session() as session:
        return session.scalar(select(Agent.identity).join(Callback, Callback.agent_id == Agent.id)
                              .where(Callback.id == promised))


def _promise_legs(sim: Simulation, promised: int) -> list[Call]:
    """The agent-first calls placed to keep this promise, in the order they were placed."""
    with sim.svc.db.session() as session:
        sids = set(session.scalars(select(CallRow.call_sid).where(CallRow.callback_id == promised)))
    return sorted((leg for leg in sim.network.calls if leg.sid in sids), key=lambda leg: leg.created_at)


def _promise_checks(sim: Simulation, caller: Caller, promised: int, final: Any) -> list[Check]:
    texts = [m for m in sim.network.messages if m.to == caller.number]
    reached = [leg for leg in sim.network.calls if leg.to == caller.number and leg.answered_at is not None]
    return [
        Check("the promise is saved at once, owned by the agent who made it", promised is not None),
        Check("the customer is texted the date and time in their language",
              any(MESSAGE_STATUS.get(m.status) == SmsState.DELIVERED and "Le llamaremos el" in m.body
                  for m in texts), texts[0].body if texts else "no text"),
        Check("the customer is reached at the promised time", bool(reached) and final is not None
              and final.state == CallbackState.DONE, f"state {getattr(final, 'state', None)}"),
    ]


def promise_kept(sim: Simulation) -> Outcome:
    """An agent promises a call in two simulated hours; at that time the owner is rung first and reaches the
    customer, although another agent is free too."""
    owner, other = sim.staff(2)
    caller, _call, promised = _promised_on_a_call(sim, owner, other)
    agents.set_status(sim.svc, other, AgentStatus.AVAILABLE)  # both free when it falls due
    due = sim.desk.clockwork.due_at(promised) or 0.0
    final = _kept(sim, promised, PROMISE_AFTER)
    sim.settle(5)
    legs = _promise_legs(sim, promised)
    outcome = Outcome("promise-kept", sim.summary())
    outcome.checks = [
        *_promise_checks(sim, caller, promised, final),
        Check("nobody is rung for it before its time", all(leg.created_at >= due for leg in legs),
              f"due at t={due:.0f}s, rung at " + ", ".join(f"t={leg.created_at:.0f}s" for leg in legs)),
        Check("its owner is the one rung, and keeps it", bool(legs) and legs[0].to == f"client:{owner}"
              and _keeper(sim, promised) == owner,
              f"rung {legs[0].to if legs else 'nobody'}"),
    ]
    return outcome


def complaint_resolved(sim: Simulation) -> Outcome:
    """The whole life of a complaint that ends with a satisfied customer."""
    return _complaint_life(sim, "complaint-resolved", satisfied=True)


def complaint_reopened(sim: Simulation) -> Outcome:
    """The whole life of a complaint whose remedy did not work: reopened, back to its owner."""
    return _complaint_life(sim, "complaint-reopened", satisfied=False)


def promise_owner_away(sim: Simulation) -> Outcome:
    """The owner is away when their promise falls due: after the grace window another agent who speaks the
    customer's language takes it, with the whole context, and the board says the owner missed it."""
    owner, other = sim.staff(2)
    caller, _call, promised = _promised_on_a_call(sim, owner, other)
    _away_once_free(sim, owner)
    agents.set_status(sim.svc, other, AgentStatus.AVAILABLE)
    due = sim.desk.clockwork.due_at(promised) or 0.0
    final = _kept(sim, promised, PROMISE_AFTER + sim.desk.clockwork.grace)
    sim.settle(5)
    legs = _promise_legs(sim, promised)
    grace = sim.desk.clockwork.grace
    with sim.svc.db.session() as session:
        board = promise_report.board(session, sim.svc.config, utcnow())
    missed = [m for m in board["owner_missed"] if m["owner"] == owner]
    outcome = Outcome("promise-owner-away", sim.summary())
    outcome.checks = [
        *_promise_checks(sim, caller, promised, final),
        Check("nobody is rung for it inside its owner's grace window",
              all(leg.created_at >= due + grace for leg in legs),
              f"due at t={due:.0f}s, grace {grace:.0f}s, rung at "
              + ", ".join(f"t={leg.created_at:.0f}s" for leg in legs)),
        Check("another agent takes it after the grace window", bool(legs) and legs[0].to == f"client:{other}"
              and _keeper(sim, promised) == other,
              f"rung {legs[0].to if legs else 'nobody'}"),
        Check("the board shows the owner missed it", bool(missed), str(missed)),
    ]
    return outcome


def _away_once_free(sim: Simulation, identity: str) -> None:
    """The owner leaves their desk once their call lets them (its last webhooks may still be on their way), after
    their own "ready" at the end of the wrap-up, which would otherwise undo it."""
    sim.desk.idle()

    def left() -> bool:
        try:
            agents.set_status(sim.svc, identity, AgentStatus.AWAY)
        except Conflict:
            return False
        return True

    eventually(left, 30)


# "Five times more callers than agents": calls arrive at five times what the agents can take, for a simulated hour.
OVERLOAD = 5.0
OVERLOAD_SECONDS = 3600.0


def overload(sim: Simulation) -> Outcome:
    """The day a contact center most needs us: five times more callers than the agents can take, for an hour. Most
    are promised a callback; every failed attempt to reach one must leave its agent at work, not rung while still on
    the line (their softphone would ignore it, and they would be set away just when they are needed)."""
    agents = sim.staff()
    handling = sim.options.habits.handling_seconds
    calls = max(1, round(OVERLOAD * len(agents) * OVERLOAD_SECONDS / handling))
    sim.options = replace(sim.options, calls=calls, rate=None, load=OVERLOAD)
    summary = sim.run()
    outcome = Outcome("overload", summary)
    kinds = [violation.kind for violation in summary.violations]
    away = summary.away
    outcome.checks = [
        Check("callers arrive at five times what the agents can take, a simulated hour's worth",
              summary.calls == calls, f"{calls} calls for {len(agents)} agents"),
        Check("most are promised a callback", summary.callbacks_offered > summary.answered,
              f"{summary.callbacks_offered} promised, {summary.answered} answered at once"),
        Check("no agent is given two calls", "agent given two calls" not in kinds,
              f"{kinds.count('agent given two calls')} times"),
        Check("no agent is rung while on a call (their softphone would ignore it and they would be set away)",
              away["ignored_while_busy"] == 0, f"{away['set_away']} set away, "
                                               f"{away['ignored_while_busy']} of them rung while on a call"),
        Check("no promise is lost", "callback lost" not in kinds,
              "kept {kept}, missed {missed}, still pending {pending}".format(**summary.callbacks)),
    ]
    return outcome


SCENARIOS: dict[str, Callable[[Simulation], Outcome]] = {
    "returning-caller": returning_caller,
    "all-busy-callback": all_busy_callback,
    "complaint-acknowledged": complaint_acknowledged,
    "complaint-resolved": complaint_resolved,
    "complaint-reopened": complaint_reopened,
    "promise-kept": promise_kept,
    "promise-owner-away": promise_owner_away,
    "overload": overload,
}
