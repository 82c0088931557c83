"""The life of an inbound call, one method per Twilio event; each runs inside one exactly-once unit of work.

Who takes the call is decided by `policy.rank_agents` (through `router.route`); this module turns the decision and
each event into the record (`call_records`), the agent's state (`agents`), promises (`callbacks`) and TwiML.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from redis import RedisError
from sqlalchemy import select
from twilio.twiml.voice_response import VoiceResponse

from directo.core.models import FROM_RAW_LENGTH, Agent, Call, utcnow
from directo.core.services import Services
from directo.core.states import (
    CONNECTED,
    FINAL_CALL_STATUSES,
    NOT_REACHED,
    UNFINISHED,
    AgentStatus,
    CallOutcome,
    CallStatus,
    Direction,
)
from recordings.acknowledgement import acknowledgement_twiml
from routing import agents, call_records, callbacks, events, twiml
from routing.directory import CallerContext, credit, ensure_customer, find, lookup, normalise_number
from routing.policy import CallerProfile
from routing.presence import Reserved, presence
from routing.router import route
from routing.webhook import Webhook

logger = logging.getLogger(__name__)

# The attempt number of the Redis-outage <Dial> that rings everyone: there is no next agent to try.
FALLBACK_ATTEMPT = 0


@dataclass(frozen=True)
class IncomingPlan:
    """Who is calling and who will take it, decided before the call is written down (see `plan_incoming`)."""

    caller: CallerContext
    agent: Reserved | None
    live_state_down: bool
    at: datetime


def plan_incoming(svc: Services, form: Mapping[str, str]) -> IncomingPlan:
    """The reads and the Redis reservation of an incoming call, outside any write transaction.

    On SQLite a write transaction holds the database's only write lock; doing the lookup and the routing
    first keeps that lock for a handful of inserts, so concurrent calls do not queue behind each other.
    Whoever calls this must hand the agent back (`release_plan`) if the call is then not recorded.
    """
    at = utcnow()
    number = normalise_number(form.get("From"), svc.config.default_region)
    with svc.db.reading() as connection:
        caller = find(connection, number, svc.config.default_language)
    profile = CallerProfile(caller.language, caller.previous_agent, frozenset())
    try:
        agent = route(presence(svc), form["CallSid"], profile, at.timestamp()).agent
        if agent is None and agents.ensure_presence(svc):  # Redis came back without the agents: put them back
            agent = route(presence(svc), form["CallSid"], profile, at.timestamp()).agent
    except RedisError:
        logger.exception("call %s: live state unreachable, ringing every agent instead", form["CallSid"])
        return IncomingPlan(caller, None, True, at)
    return IncomingPlan(caller, agent, False, at)


def release_plan(svc: Services, plan: IncomingPlan, call_sid: str) -> None:
    """The call was not recorded (a redelivery, or a failure): its agent is free again, idle time kept."""
    if plan.agent is not None:
        agents.release(svc, plan.agent.identity, call_sid)


class InboundCall:
    """The steps of an inbound call, each handling one webhook."""

    def __init__(self, hook: Webhook) -> None:
        self.svc, self.unit, self.urls = hook.svc, hook.unit, hook.urls
        self.config, self.session, self.now = hook.config, hook.session, hook.now

    # --- Twilio events -------------------------------------------------------------------------------

    def incoming(self, form: Mapping[str, str], plan: IncomingPlan) -> VoiceResponse:
        """Record what `plan_incoming` decided: a few inserts, so the write lock is held as briefly as possible."""
        sid = form["CallSid"]
        caller = ensure_customer(self.session.connection(), plan.caller)
        values = dict(call_sid=sid, from_raw=form.get("From", "")[:FROM_RAW_LENGTH] or None,
                      caller=caller.number, customer_id=caller.customer_id, language=caller.language,
                      previous_agent_id=caller.previous_agent_id, started_at=plan.at, direction=Direction.INBOUND,
                      dial_attempts=0, agent_id=None, callback_id=None, notes=None, answered_at=None, ended_at=None)
        agent = plan.agent
        if plan.live_state_down:
            values.update(outcome=CallOutcome.FALLBACK)
        elif agent is None:
            values.update(outcome=CallOutcome.ROUTING)
        else:
            values.update(outcome=CallOutcome.RINGING, agent_id=agent.agent_id, dial_attempts=1)
        call_id = call_records.record(self.session, values)
        if call_id is None:
            return self._replayed_late(sid, agent)
        self.unit.event(call_id, "incoming", {"from": form.get("From"), "caller": caller.number,
                                              "language": caller.language})
        if plan.live_state_down:
            return self._ring_everyone(call_id, sid, caller)
        if agent is None:
            return self._no_person(call_id, caller, "nobody_free")
        return self._dial(call_id, sid, caller, agent, attempt=1)

    def dial_complete(self, form: Mapping[str, str], attempt: int) -> VoiceResponse:
        call = call_records.find(self.session, form["CallSid"])
        if call is None or call.ended_at is not None:  # unknown, or over: nobody is left on the line to connect
            return twiml.hang_up()
        status = form.get("DialCallStatus", "")
        agent = call.agent
        self.unit.event(call.id, "dial-complete", {"status": status, "attempt": attempt,
                                                   "agent": agent.identity if agent else None})
        if status in CONNECTED:
            call_records.answered_before(self.session, call, self.now, form.get("DialCallDuration"))
            self._conversation_over(call)
            # A complaint flagged during the conversation keeps the caller on the line to hear its reference.
            return acknowledgement_twiml(self.session, call, self.urls) or twiml.hang_up()
        if form.get("CallStatus") in FINAL_CALL_STATUSES or status == CallStatus.CANCELED:
            self._abandon(call)
            return twiml.hang_up()
        if agent is not None and status in NOT_REACHED and agents.missed_ring(self.svc, agent, call.call_sid):
            self.unit.event(call.id, "agent-away", {"agent": agent.identity, "reason": status})
        caller = lookup(self.session, call.caller, call.language)
        if attempt == FALLBACK_ATTEMPT or attempt >= self.config.max_dial_attempts:
            return self._no_person(call.id, caller, "nobody_answered")
        try:
            next_agent = self._reserve(call.call_sid, caller, call_records.tried(self.session, call))
        except RedisError:
            logger.exception("call %s: live state unreachable on retry", call.call_sid)
            next_agent = None
        if next_agent is None:
            return self._no_person(call.id, caller, "nobody_answered")
        call_records.ringing(call, next_agent.agent_id, attempt + 1)
        return self._dial(call.id, call.call_sid, caller, next_agent, attempt=attempt + 1)

    def agent_leg(self, form: Mapping[str, str]) -> VoiceResponse:
        """Progress of the agent's leg: answering is when the caller's wait ends; its end is when the agent may
        take another call (a wrap-up first), whatever became of the caller's leg."""
        call = call_records.find(self.session, form.get("ParentCallSid", ""))
        if call is None:
            return twiml.empty()
        status = form.get("CallStatus", "")
        self.unit.event(call.id, f"agent-{status}", {"leg": form.get("CallSid"), "to": form.get("To")})
        if status == CallStatus.IN_PROGRESS and call_records.answered(self.session, call, self.now):
            self._served(call)
            if call.agent is None:  # the outage fallback rang everyone: whoever answered is the agent
                call_records.taken_by(self.session, call, form.get("To", ""))
                if call.agent is not None:
                    agents.took_unreserved(self.svc, call.agent.identity, call.call_sid)
            else:
                agents.on_the_line(self.svc, call.agent.identity, call.call_sid)
        elif status == CallStatus.COMPLETED and call.agent is not None and _leg_to(call.agent, form.get("To", "")) \
                and agents.wrap_up(self.unit, self.svc, call.agent.identity, call.call_sid):
            self.unit.event(call.id, "agent-wrapup", {"agent": call.agent.identity,
                                                      "seconds": self.config.wrapup_seconds})
        return twiml.empty()

    def status(self, form: Mapping[str, str]) -> VoiceResponse:
        """The caller's call ended: close the record and free an agent the call still holds."""
        call = call_records.find(self.session, form["CallSid"])
        status = form.get("CallStatus", "")
        if call is None or status not in FINAL_CALL_STATUSES:
            return twiml.empty()
        self.unit.event(call.id, "call-ended", {"status": status, "duration": form.get("CallDuration")})
        if call.answered_at is not None:
            self._conversation_over(call)
        elif call.outcome in UNFINISHED:
            self._abandon(call)
        call_records.ended(call, self.now)
        return twiml.empty()

    # --- decisions -----------------------------------------------------------------------------------

    def _reserve(self, sid: str, caller: CallerContext, tried: frozenset[str]) -> Reserved | None:
        profile = CallerProfile(caller.language, caller.previous_agent, tried)
        agent = route(presence(self.svc), sid, profile, self.now.timestamp()).agent
        if agent is not None:
            identity = agent.identity
            self.unit.undo.append(lambda: agents.release(self.svc, identity, sid))
        return agent

    def _dial(self, call_id: int, sid: str, caller: CallerContext, agent: Reserved, attempt: int) -> VoiceResponse:
        self.unit.event(call_id, "agent-reserved", {
            "agent": agent.identity, "attempt": attempt, "previous_agent": agent.identity == caller.previous_agent,
        })
        pop = {"call_sid": sid, "call_id": call_id, "attempt": attempt, **twiml.screen_pop(caller, sid)}
        self.unit.after_commit.append(lambda: events.publish(self.svc.redis, agent.identity, "call-reserved", pop))
        return twiml.connect_agent(
            twiml.AgentTarget(agent.identity, agent.phone),
            caller,
            sid,
            action_url=self.urls("voice.dial_complete", attempt=attempt),
            agent_status_url=self.urls("voice.agent_leg"),
            timeout=self.config.ring_timeout_seconds,
            caller_id=caller.number,
        )

    def _no_person(self, call_id: int, caller: CallerContext, reason: str) -> VoiceResponse:
        """Nobody can take the call: promise a callback, queued before a word is said, so a hang-up loses nothing."""
        self.unit.event(call_id, "no-person", {"reason": reason})
        if caller.number is None:  # a withheld number cannot be called back
            call_records.no_person(self.session, call_id, CallOutcome.NO_AGENT)
            return twiml.say_and_hang_up(caller.language, reason)
        existing = callbacks.open_callback(self.session, caller.number)
        if existing is not None:  # one promise per customer, however often they call
            call_records.no_person(self.session, call_id, CallOutcome.CALLBACK, existing.id)
            left = math.ceil((existing.promised_by - self.now).total_seconds() / 60)
            self.unit.event(call_id, "callback-exists", {"callback_id": existing.id})
            return twiml.say_and_hang_up(caller.language, "callback_already", minutes=max(left, 1))
        callback, minutes = callbacks.queue(
            self.session, self.config, phone=caller.number, language=caller.language,
            customer_id=caller.customer_id, origin_call_id=call_id, preferred_agent_id=caller.previous_agent_id,
            now=self.now,
        )
        call_records.no_person(self.session, call_id, CallOutcome.CALLBACK, callback.id)
        self.unit.event(call_id, "callback-queued", {"callback_id": callback.id, "promised_minutes": minutes})
        return twiml.promise_callback(
            caller.language,
            minutes,
            reason_action_url=self.urls("callbacks.reason", callback=callback.id),
            reason_status_url=self.urls("callbacks.reason_status", callback=callback.id),
        )

    def _ring_everyone(self, call_id: int, sid: str, caller: CallerContext) -> VoiceResponse:
        """Without presence, everyone at work is rung at once, except those the database shows on a call or
        ringing: no agent is given a second call, even during an outage."""
        at_work = self.session.scalars(
            select(Agent).where(Agent.active.is_(True), Agent.status != AgentStatus.OFFLINE).order_by(Agent.id)
        ).all()
        engaged = agents.engaged_on_record(self.session, self.config.ring_timeout_seconds, self.now)
        people = [agent for agent in at_work if agent.id not in engaged]
        self.unit.event(call_id, "fallback", {"agents": [a.identity for a in people],
                                              "on_a_call": [a.identity for a in at_work if a.id in engaged]})
        if not people and not self.config.fallback_number:
            # Everyone at work is on a call: the promise any caller gets when nobody is free (the record works).
            return self._no_person(call_id, caller, "nobody_free") if at_work \
                else twiml.say_and_hang_up(caller.language, "trouble")
        return twiml.ring_everyone(
            [twiml.AgentTarget(a.identity, a.phone) for a in people],
            caller,
            sid,
            fallback_number=self.config.fallback_number or None,
            action_url=self.urls("voice.dial_complete", attempt=FALLBACK_ATTEMPT),
            agent_status_url=self.urls("voice.agent_leg"),
            timeout=self.config.ring_timeout_seconds,
        )

    def _conversation_over(self, call: Call) -> None:
        """The conversation is over (once per call): the agent becomes this customer's known agent. Their wrap-up
        starts when their own leg ends (`agent_leg`), which may come a moment after the caller's side says so."""
        if not call_records.finished(self.session, call, self.now):
            return
        self._served(call)
        if call.agent is not None:
            credit(self.session, call.customer_id, call.agent.id)

    def _served(self, call: Call) -> None:
        """A caller who reached a person no longer needs the callback they were promised."""
        if call.direction == Direction.INBOUND and call.caller:
            closed = callbacks.served_by_calling_in(self.session, call.caller, self.now)
            if closed:
                self.unit.event(call.id, "callback-closed", {"count": len(closed)})

    def _abandon(self, call: Call) -> None:
        """The caller hung up before anyone answered: the reserved agent goes back as idle as before."""
        call_records.abandoned(call)
        if call.agent is not None:
            agents.free(self.unit, self.svc, call.agent.identity, call.call_sid)

    def _replayed_late(self, sid: str, agent: Reserved | None) -> VoiceResponse:
        """The call is on record but this event's receipt is not: receipts are pruned after days, and Twilio
        redelivers within seconds, so this is a replay. It changes nothing; the agent reserved for it goes back."""
        logger.warning("incoming %s: already on record, ignored as a late replay", sid)
        if agent is not None:
            identity = agent.identity
            self.unit.after_commit.append(lambda: agents.release(self.svc, identity, sid))
        return twiml.hang_up()


def _leg_to(agent: Agent, to: str) -> bool:
    """Whether a leg went to this agent: a later try's agent shares the caller's CallSid, never the leg's `To`."""
    return to in (f"client:{agent.identity}", agent.phone)
