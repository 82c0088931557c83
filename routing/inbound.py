"""The life of an inbound call, one method per Twilio event; each runs inside one exactly-once unit of work."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis import RedisError
from sqlalchemy import insert, select, update
from twilio.twiml.voice_response import VoiceResponse

from directo.core.db import insert_or_ignore
from directo.core.models import FROM_RAW_LENGTH, Agent, Call, CallEvent, Customer, utcnow
from directo.core.services import Services
from directo.core.unit_of_work import Replay, Unit, once
from recordings.acknowledgement import acknowledgement_twiml
from routing import events, twiml
from routing.agents import ensure_presence
from routing.callback_jobs import dispatch_callbacks
from routing.callbacks import close_for_customer, dispatch, open_callback, queue_callback
from routing.directory import CallerContext, ensure_customer, find, lookup, normalise_number
from routing.policy import CallerProfile
from routing.presence import Reserved, presence
from routing.router import route

logger = logging.getLogger(__name__)

ANSWERED = ("completed", "answered")
NOT_REACHED = ("no-answer", "busy", "failed")
FINAL_CALL_STATUSES = ("completed", "busy", "failed", "no-answer", "canceled")
# The attempt number of the Redis-outage <Dial> that rings everyone: there is no next agent to try.
FALLBACK_ATTEMPT = 0

_INSERT_CALL = {dialect: insert_or_ignore(dialect, Call).returning(Call.id) for dialect in ("sqlite", "postgresql")}
_INSERT_EVENT = insert(CallEvent)

# Builds an absolute webhook URL for an endpoint name and query values.
UrlFor = Callable[..., str]


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
        if agent is None and ensure_presence(svc):  # Redis came back without the agents: put them back first
            agent = route(presence(svc), form["CallSid"], profile, at.timestamp()).agent
    except RedisError:
        logger.exception("call %s: live state unreachable, ringing every agent instead", form["CallSid"])
        return IncomingPlan(caller, None, True, at)
    return IncomingPlan(caller, agent, False, at)


def release_plan(svc: Services, plan: IncomingPlan, call_sid: str) -> None:
    """The call was not recorded (a redelivery, or a failure): its agent is free again, idle time kept."""
    if plan.agent is not None:
        presence(svc).transition(plan.agent.identity, "available", expect_call=call_sid)


def run_flow(
    svc: Services,
    sid: str,
    event: str,
    step: Callable[[Any], VoiceResponse],
    url_for: UrlFor,
    flow_class: type[CallFlow] | None = None,
    on_replay: Callable[[], object] | None = None,
) -> str:
    """One step of a call's life, once per (call, event): its TwiML, or the first answer again for a repeat."""
    with once(svc.db, sid, event) as unit:
        if isinstance(unit, Replay):
            if on_replay is not None:
                on_replay()
            return unit.response
        flow = (flow_class or CallFlow)(svc, unit, url_for)
        unit.response = str(step(flow))
        flow.save_events()
    return unit.response


class CallFlow:
    def __init__(self, services: Services, unit: Unit, url_for: UrlFor, now: datetime | None = None) -> None:
        self.svc = services
        self.config = services.config
        self.session = unit.session
        self.unit = unit
        self.url_for = url_for
        self.now = now or utcnow()
        self._events: list[dict[str, Any]] = []

    # --- Twilio events -------------------------------------------------------------------------------

    def incoming(self, form: Mapping[str, str], plan: IncomingPlan) -> VoiceResponse:
        """Record what `plan_incoming` decided: a few inserts, so the write lock is held as briefly as possible."""
        sid = form["CallSid"]
        caller = ensure_customer(self.session.connection(), plan.caller)
        record = dict(call_sid=sid, from_raw=form.get("From", "")[:FROM_RAW_LENGTH] or None,
                      caller=caller.number, customer_id=caller.customer_id,
                      language=caller.language, previous_agent_id=caller.previous_agent_id, started_at=plan.at,
                      direction="inbound", dial_attempts=0, agent_id=None, callback_id=None, notes=None,
                      answered_at=None, ended_at=None)
        agent = plan.agent
        if plan.live_state_down:
            call_id = self._insert_call(record, outcome="fallback")
        elif agent is None:
            call_id = self._insert_call(record, outcome="routing")
        else:
            call_id = self._insert_call(record, outcome="ringing", agent_id=agent.agent_id, dial_attempts=1)
        if call_id is None:
            return self._replayed_late(sid, agent)
        self._event(call_id, "incoming", _arrival(form, caller))
        if plan.live_state_down:
            return self._ring_everyone(call_id, sid, caller)
        if agent is None:
            return self._no_person(call_id, caller, "nobody_free")
        return self._dial(call_id, sid, caller, agent, attempt=1)

    def dial_complete(self, form: Mapping[str, str], attempt: int) -> VoiceResponse:
        call = self._call(form["CallSid"])
        if call is None or call.ended_at is not None:  # unknown, or over: nobody is left on the line to connect
            return twiml.hang_up()
        status = form.get("DialCallStatus", "")
        agent = call.agent
        self._event(call.id, "dial-complete", {"status": status, "attempt": attempt, "agent": _identity(agent)})
        if status in ANSWERED:
            duration = int(form.get("DialCallDuration") or 0)
            if call.answered_at is None:
                call.answered_at = self.now - timedelta(seconds=duration)
            self._finish_with_agent(call)
            # A complaint flagged during the conversation keeps the caller on the line to hear its reference.
            return acknowledgement_twiml(self.session, call, self.url_for) or twiml.hang_up()
        if form.get("CallStatus") in FINAL_CALL_STATUSES or status == "canceled":
            self._abandon(call)
            return twiml.hang_up()
        if agent is not None and status in NOT_REACHED:
            self._agent_missed(call, agent, status)
        caller = lookup(self.session, call.caller, call.language)
        if attempt == FALLBACK_ATTEMPT or attempt >= self.config.max_dial_attempts:
            return self._no_person(call.id, caller, "nobody_answered")
        try:
            next_agent = self._reserve(call.call_sid, caller, self._tried(call))
        except RedisError:
            logger.exception("call %s: live state unreachable on retry", call.call_sid)
            next_agent = None
        if next_agent is None:
            return self._no_person(call.id, caller, "nobody_answered")
        call.agent_id = next_agent.agent_id
        call.dial_attempts = attempt + 1
        call.outcome = "ringing"
        return self._dial(call.id, call.call_sid, caller, next_agent, attempt=attempt + 1)

    def agent_leg(self, form: Mapping[str, str]) -> VoiceResponse:
        """Progress of the agent's leg: answering is when the caller's wait ends."""
        call = self._call(form.get("ParentCallSid", ""))
        if call is None:
            return twiml.empty()
        status = form.get("CallStatus", "")
        self._event(call.id, f"agent-{status}", {"leg": form.get("CallSid"), "to": form.get("To")})
        if status == "in-progress" and call.answered_at is None:
            call.answered_at = self.now
            call.outcome = "answered"
            self._served(call)
            if call.agent is None:  # the outage fallback rang everyone: whoever answered is the agent
                call.agent = self._agent_by_leg(form.get("To", ""))
            if call.agent is not None:
                identity = call.agent.identity
                self._live(lambda: presence(self.svc).transition(
                    identity, "busy", expect_call=call.call_sid, call=call.call_sid))
        return twiml.empty()

    def status(self, form: Mapping[str, str]) -> VoiceResponse:
        """The caller's call ended: close the record and free an agent the call still holds."""
        call = self._call(form["CallSid"])
        status = form.get("CallStatus", "")
        if call is None or status not in FINAL_CALL_STATUSES:
            return twiml.empty()
        self._event(call.id, "call-ended", {"status": status, "duration": form.get("CallDuration")})
        if call.answered_at is not None:
            self._finish_with_agent(call)
        elif call.outcome in ("routing", "ringing"):
            self._abandon(call)
        call.ended_at = call.ended_at or self.now
        return twiml.empty()

    def save_events(self) -> None:
        """All of this webhook's timeline rows in one statement."""
        if self._events:
            self.session.connection().execute(_INSERT_EVENT, self._events)

    # --- decisions -----------------------------------------------------------------------------------

    def _reserve(self, sid: str, caller: CallerContext, tried: frozenset[str]) -> Reserved | None:
        profile = CallerProfile(caller.language, caller.previous_agent, tried)
        agent = route(presence(self.svc), sid, profile, self.now.timestamp()).agent
        if agent is not None:
            identity = agent.identity
            self.unit.undo.append(lambda: presence(self.svc).transition(identity, "available", expect_call=sid))
        return agent

    def _dial(self, call_id: int, sid: str, caller: CallerContext, agent: Reserved, attempt: int) -> VoiceResponse:
        self._event(call_id, "agent-reserved", {
            "agent": agent.identity, "attempt": attempt, "previous_agent": agent.identity == caller.previous_agent,
        })
        pop = {"call_sid": sid, "call_id": call_id, "attempt": attempt, **twiml.screen_pop(caller, sid)}
        self.unit.after_commit.append(lambda: events.publish(self.svc.redis, agent.identity, "call-reserved", pop))
        return twiml.connect_agent(
            twiml.AgentTarget(agent.identity, agent.phone),
            caller,
            sid,
            action_url=self.url_for("voice.dial_complete", attempt=attempt),
            agent_status_url=self.url_for("voice.agent_leg"),
            timeout=self.config.ring_timeout_seconds,
            caller_id=caller.number,
        )

    def _no_person(self, call_id: int, caller: CallerContext, reason: str) -> VoiceResponse:
        """Nobody can take the call: promise a callback, queued before a word is said, so a hang-up loses nothing."""
        self._event(call_id, "no-person", {"reason": reason})
        if caller.number is None:  # a withheld number cannot be called back
            self._set_outcome(call_id, "no-agent")
            return twiml.say_and_hang_up(caller.language, reason)
        existing = open_callback(self.session, caller.number)
        if existing is not None:  # one promise per customer, however often they call
            self._set_outcome(call_id, "callback", callback_id=existing.id)
            left = math.ceil((existing.promised_by - self.now).total_seconds() / 60)
            self._event(call_id, "callback-exists", {"callback_id": existing.id})
            return twiml.say_and_hang_up(caller.language, "callback_already", minutes=max(left, 1))
        callback, minutes = queue_callback(
            self.session, self.config, phone=caller.number, language=caller.language,
            customer_id=caller.customer_id, origin_call_id=call_id, preferred_agent_id=caller.previous_agent_id,
            now=self.now,
        )
        self._set_outcome(call_id, "callback", callback_id=callback.id)
        self._event(call_id, "callback-queued", {"callback_id": callback.id, "promised_minutes": minutes})
        return twiml.promise_callback(
            caller.language,
            minutes,
            reason_action_url=self.url_for("callbacks.reason", callback=callback.id),
            reason_status_url=self.url_for("callbacks.reason_status", callback=callback.id),
        )

    def _set_outcome(self, call_id: int, outcome: str, callback_id: int | None = None) -> None:
        self.session.execute(
            update(Call).where(Call.id == call_id).values(outcome=outcome, agent_id=None, callback_id=callback_id)
        )

    def _ring_everyone(self, call_id: int, sid: str, caller: CallerContext) -> VoiceResponse:
        agents = self.session.scalars(
            select(Agent).where(Agent.active.is_(True), Agent.status != "offline").order_by(Agent.id)
        ).all()
        self._event(call_id, "fallback", {"agents": [a.identity for a in agents]})
        if not agents and not self.config.fallback_number:
            return twiml.say_and_hang_up(caller.language, "trouble")
        return twiml.ring_everyone(
            [twiml.AgentTarget(a.identity, a.phone) for a in agents],
            caller,
            sid,
            fallback_number=self.config.fallback_number or None,
            action_url=self.url_for("voice.dial_complete", attempt=FALLBACK_ATTEMPT),
            agent_status_url=self.url_for("voice.agent_leg"),
            timeout=self.config.ring_timeout_seconds,
        )

    # --- agent state ---------------------------------------------------------------------------------

    def _finish_with_agent(self, call: Call) -> None:
        """The conversation is over (once per call): wrap-up, and the agent becomes this customer's known agent."""
        if call.ended_at is not None:
            return
        call.ended_at = self.now
        call.outcome = "answered"
        self._served(call)
        agent = call.agent
        if agent is None:
            return
        if call.customer_id is not None:
            self.session.execute(
                update(Customer)
                .where(Customer.id == call.customer_id)
                .values(last_agent_id=agent.id, answered_calls=Customer.answered_calls + 1)
            )
        if self._wrap_up(agent.identity, call.call_sid):
            self._event(call.id, "agent-wrapup", {"agent": agent.identity, "seconds": self.config.wrapup_seconds})

    def _wrap_up(self, identity: str, holding: str) -> bool:
        """Wrap-up after a conversation; when it ends the agent may take the oldest waiting callback."""
        wrapup = self.config.wrapup_seconds
        if wrapup > 0:
            until = self.now.timestamp() + wrapup
            moved = self._live(lambda: presence(self.svc).transition(identity, "wrapup", expect_call=holding,
                                                                    until=until))
            if moved:  # RQ schedules to the whole second, rounding down: a second more never runs before the end
                self.unit.after_commit.append(
                    lambda: self.svc.queue.enqueue_in(timedelta(seconds=wrapup + 1), dispatch_callbacks))
            return bool(moved)
        moved = self._live(lambda: presence(self.svc).transition(identity, "available", expect_call=holding,
                                                                since=self.now.timestamp()))
        if moved:
            self._dispatch_to(identity)
        return bool(moved)

    def _dispatch_to(self, identity: str) -> None:
        """Once committed, offer a free agent the oldest callback they may take."""
        self.unit.after_commit.append(lambda: dispatch(self.svc, only=identity))

    def _served(self, call: Call) -> None:
        """A caller who reached a person no longer needs the callback they were promised."""
        if call.direction == "inbound" and call.caller:
            closed = close_for_customer(self.session, call.caller, "the customer reached a person by calling in",
                                        self.now)
            if closed:
                self._event(call.id, "callback-closed", {"count": closed})

    def _agent_missed(self, call: Call, agent: Agent, status: str) -> None:
        """An agent who lets a call ring out is probably not at their desk: set them away, not idle."""
        moved = self._live(lambda: presence(self.svc).transition(agent.identity, "away", expect_call=call.call_sid))
        if moved:
            agent.status = "away"
            self._event(call.id, "agent-away", {"agent": agent.identity, "reason": status})

    def _abandon(self, call: Call) -> None:
        """The caller hung up before anyone answered: the reserved agent goes back as idle as before."""
        call.outcome = "abandoned"
        if call.agent is not None:
            identity = call.agent.identity
            if self._live(lambda: presence(self.svc).transition(identity, "available", expect_call=call.call_sid)):
                self._dispatch_to(identity)

    # --- helpers -------------------------------------------------------------------------------------

    def _insert_call(self, record: dict[str, Any], **values: Any) -> int | None:
        """The new call's id; None when the CallSid is already on record."""
        connection = self.session.connection()
        return connection.execute(_INSERT_CALL[connection.dialect.name], {**record, **values}).scalar()

    def _replayed_late(self, sid: str, agent: Reserved | None) -> VoiceResponse:
        """The call is on record but this event's receipt is not: receipts are pruned after days, and Twilio
        redelivers within seconds, so this is a replay. It changes nothing; the agent reserved for it goes back."""
        logger.warning("incoming %s: already on record, ignored as a late replay", sid)
        if agent is not None:
            identity = agent.identity
            self.unit.after_commit.append(
                lambda: self._live(lambda: presence(self.svc).transition(identity, "available", expect_call=sid)))
        return twiml.hang_up()

    def _live(self, change: Callable[[], Any]) -> Any:
        """A live-state change that must not break the record: on a Redis outage it is logged and skipped."""
        try:
            return change()
        except RedisError:
            logger.exception("live state unreachable; the call record is kept without it")
            return None

    def _call(self, sid: str) -> Call | None:
        call = self.session.scalar(select(Call).where(Call.call_sid == sid))
        if call is None:
            logger.warning("webhook for unknown call %s", sid)
        return call

    def _tried(self, call: Call) -> frozenset[str]:
        details = self.session.scalars(
            select(CallEvent.detail).where(CallEvent.call_id == call.id, CallEvent.kind == "agent-reserved")
        )
        return frozenset(d["agent"] for d in details)

    def _agent_by_leg(self, to: str) -> Agent | None:
        identity = to.removeprefix("client:")
        return self.session.scalar(select(Agent).where((Agent.identity == identity) | (Agent.phone == to)))

    def _event(self, call_id: int, kind: str, detail: dict[str, Any]) -> None:
        self._events.append({"call_id": call_id, "at": self.now, "kind": kind, "detail": detail})


def _arrival(form: Mapping[str, str], caller: CallerContext) -> dict[str, Any]:
    return {"from": form.get("From"), "caller": caller.number, "language": caller.language}


def _identity(agent: Agent | None) -> str | None:
    return agent.identity if agent else None
