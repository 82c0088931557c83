"""The life of a callback call: the reason the caller left, then the agent-first call that keeps the promise.

One method per Twilio event, each inside one exactly-once unit of work; the promise changes only through
`callbacks`, the agent only through `agents`, the call log only through `call_records`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from twilio.twiml.voice_response import VoiceResponse

from directo.core.config import Config
from directo.core.media_links import playable_url
from directo.core.models import Callback, Complaint, Customer, Recording
from directo.core.states import (
    AGENT_GONE,
    CONNECTED,
    CallbackState,
    CallOutcome,
    CallStatus,
    RecordingState,
    RecordingStatus,
)
from recordings.jobs import enqueue_fetch
from recordings.references import spelled
from routing import agents, call_records, callbacks, complaint_calls, twiml
from routing.directory import credit
from routing.dispatch import dispatch
from routing.webhook import Webhook

logger = logging.getLogger(__name__)
REASON_KIND = "callback-reason"


class CallbackCall:
    """The steps of one callback's calls, each handling one webhook."""

    def __init__(self, hook: Webhook, callback_id: int) -> None:
        self.svc, self.unit, self.urls = hook.svc, hook.unit, hook.urls
        self.config, self.session, self.now = hook.config, hook.session, hook.now
        self.callback_id = callback_id
        self.callback = self.session.get(Callback, callback_id)
        self.key = callbacks.reservation_key(callback_id)

    # --- the caller's side: the reason they recorded after the promise -----------------------------

    def reason(self, form: Mapping[str, str]) -> VoiceResponse:
        """The caller finished recording (or pressed #): thank them and end the call."""
        language = self.callback.language if self.callback else self.config.default_language
        return twiml.say_and_hang_up(language, "callback_thanks")

    def reason_status(self, form: Mapping[str, str]) -> VoiceResponse:
        """Twilio finished the recording: attach it to the queued callback and keep a copy of our own."""
        callback = self.callback
        status = form.get("RecordingStatus", "")
        if callback is None:
            logger.warning("recording for unknown callback %s", self.callback_id)
            return twiml.empty()
        if status != RecordingStatus.COMPLETED:
            logger.info("callback %s: no reason recorded (%s)", self.callback_id, status)
            return twiml.empty()
        recording = Recording(
            twilio_sid=form.get("RecordingSid", ""), call_sid=form.get("CallSid"), kind=REASON_KIND,
            source_url=form.get("RecordingUrl", ""), state=RecordingState.PENDING,
            duration_ms=call_records.seconds(form.get("RecordingDuration")) * 1000,
        )
        callbacks.attach_reason(self.session, callback, recording)
        recording_id = recording.id
        # Keep our own copy of the caller's words: the same fetch job that keeps complaint recordings.
        self.unit.after_commit.append(lambda: enqueue_fetch(self.svc, recording_id))
        return twiml.empty()

    # --- the agent-first call -------------------------------------------------------------------------

    def agent_answered(self, form: Mapping[str, str]) -> VoiceResponse:
        """The agent picked up: they hear who and why, then the customer's phone rings."""
        callback = self.callback
        sid = form["CallSid"]
        if callback is None or callback.agent is None or not callbacks.adopt(
                self.session, callback, sid, callback.agent.id, self.now, answered=True):
            return twiml.hang_up()  # a stale call for a callback that was requeued, closed or is on another call
        agent = callback.agent
        agents.on_the_line(self.svc, agent.identity, self.key)
        call = call_records.find(self.session, sid)
        self.unit.event(call.id, "callback-agent-answered", {"agent": agent.identity, "attempt": callback.attempts})
        customer = self.session.get(Customer, callback.customer_id) if callback.customer_id else None
        complaint = self.session.get(Complaint, callback.complaint_id) if callback.complaint_id else None
        reason = callback.reason_recording_id
        # The voice says the name as the customer taught us ("how to say it"), else as written.
        said = (customer.say_as or customer.name) if customer else None
        facts = {"who": said or _spoken_number(callback.phone),
                 "about": callback.about or "", "reference": spelled(complaint.reference) if complaint else ""}
        return twiml.whisper_and_dial(
            agent.languages[0] if agent.languages else self.config.default_language,
            callback.kind, facts,
            playable_url(self.urls, self.config.secret_key, reason) if reason else None,
            callback.phone,
            caller_id=self.config.twilio_caller_id or None,
            action_url=self.urls("callbacks.customer_complete", callback=self.callback_id),
            customer_status_url=self.urls("callbacks.customer_leg", callback=self.callback_id),
            timeout=self.config.ring_timeout_seconds * 2,  # a customer takes longer to reach a phone than an agent
        )

    def customer_leg(self, form: Mapping[str, str]) -> VoiceResponse:
        call = call_records.find(self.session, form.get("ParentCallSid", ""))
        if call is not None and form.get("CallStatus") == CallStatus.IN_PROGRESS \
                and call_records.answered(self.session, call, self.now):
            self.unit.event(call.id, "callback-customer-answered", {"leg": form.get("CallSid")})
        return twiml.empty()

    def customer_complete(self, form: Mapping[str, str]) -> VoiceResponse:
        """The customer leg ended: the promise is kept, or retried with backoff inside its window, or missed."""
        callback = self.callback
        call = call_records.find(self.session, form["CallSid"])
        if callback is None or callback.agent is None or callback.current_call_sid not in (None, form["CallSid"]):
            return twiml.hang_up()
        agent = callback.agent
        status = form.get("DialCallStatus", "")
        if status in CONNECTED:
            if not callbacks.keep(self.session, self.callback_id, self.now):
                return twiml.hang_up()
            if call is not None:
                self.unit.event(call.id, "callback-customer", {"status": status})
                call_records.answered_before(self.session, call, self.now, form.get("DialCallDuration"))
                call_records.finished(self.session, call, self.now)
            credit(self.session, callback.customer_id, agent.id)
            complaint_calls.kept(self.unit, self.svc, callback)
            return twiml.hang_up()  # the agent's wrap-up begins when their own leg ends (`agent_status`)
        moved = self._customer_missed(callback, status)
        if moved is None:
            return twiml.hang_up()
        if moved == CallbackState.MISSED:
            complaint_calls.missed(self.unit, self.svc, callback)
        if call is not None:
            self.unit.event(call.id, "callback-customer", {"status": status})
            call_records.not_reached(self.session, call, CallOutcome.NO_ANSWER, self.now)
        # The agent still hears that the customer was not reached: they are free when their own leg ends.
        return twiml.say_and_hang_up(agent.languages[0] if agent.languages else callback.language,
                                     "customer_missed")

    def agent_status(self, form: Mapping[str, str]) -> VoiceResponse:
        """Progress of the call to the agent; an agent who does not answer sends the callback back in line."""
        callback = self.callback
        status = form.get("CallStatus", "")
        sid = form["CallSid"]
        call = call_records.find(self.session, sid)
        if call is not None and status in AGENT_GONE:
            call_records.not_reached(self.session, call, CallOutcome.AGENT_NO_ANSWER, self.now)
        elif call is not None and status == CallStatus.COMPLETED:
            call_records.ended(call, self.now)
        # The agent rung on this leg is the one its record names: the callback may have gone back in line since (it
        # names no agent) or to another agent, who holds the same reservation and must not be moved by this leg.
        agent = call.agent if call is not None and call.agent is not None else callback and callback.agent
        if callback is None or agent is None:
            return twiml.empty()
        if status in AGENT_GONE:
            if not callbacks.requeue(self.session, self.callback_id, due_at=self.now, call_sid=sid,
                                     error=f"{agent.identity} did not answer ({status})"):
                return twiml.empty()
            agents.missed_ring(self.svc, agent, self.key)
            self.unit.after_commit.append(lambda: dispatch(self.svc))
        elif status == CallStatus.COMPLETED:
            # The agent's own leg is over, and with it what held them: the only moment they may be given another
            # call (DESIGN: an agent is free only when their own leg has ended). The customer's outcome already
            # decided the callback's fate, or the agent hung up before it (then the callback is tried again soon).
            callbacks.requeue(self.session, self.callback_id, due_at=self.now, call_sid=sid,
                              error=f"{agent.identity} hung up before the customer answered")
            agents.wrap_up(self.unit, self.svc, agent.identity, self.key,
                           wrapup_after_attempt(self.config, reached=call is not None and call.answered_at is not None))
        return twiml.empty()

    def _customer_missed(self, callback: Callback, status: str) -> CallbackState | None:
        """Retry with growing gaps while the promise still stands; after that the miss is recorded, and shown.
        The state the callback moved to; None when another event moved it first."""
        retry_at = self.now + timedelta(minutes=self.config.callback_retry_minutes * callback.attempts)
        if callback.attempts < self.config.callback_max_attempts and retry_at <= callback.promised_by:
            return CallbackState.QUEUED if callbacks.requeue(
                self.session, self.callback_id, due_at=retry_at, error=f"the customer did not answer ({status})") \
                else None
        return CallbackState.MISSED if callbacks.miss(
            self.session, self.callback_id, f"the customer did not answer {callback.attempts} time(s) ({status})",
            self.now) else None


def wrapup_after_attempt(config: Config, *, reached: bool) -> int:
    """A conversation with the customer earns the full wrap-up; an attempt that reached nobody a short one, so the
    agent is not rung again the moment they put the phone down (and has a breath before the next customer)."""
    return config.wrapup_seconds if reached else config.callback_attempt_wrapup_seconds


def _spoken_number(phone: str) -> str:
    """Digits read one by one, so a text-to-speech voice does not say 'six hundred million'."""
    return " ".join(phone.lstrip("+"))
