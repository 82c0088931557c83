"""The life of a callback call: the reason the caller left, then the agent-first call that keeps the promise."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import update
from twilio.twiml.voice_response import VoiceResponse

from directo.core.media_links import playable_url
from directo.core.models import Agent, Callback, Customer, Recording
from recordings.jobs import enqueue_fetch
from routing import twiml
from routing.callbacks import attempt_call, dispatch, requeue, reservation_key
from routing.inbound import ANSWERED, CallFlow
from routing.presence import presence

logger = logging.getLogger(__name__)

AGENT_GONE = ("no-answer", "busy", "failed", "canceled")


class CallbackFlow(CallFlow):
    # --- the caller's side: the reason they recorded after the promise -----------------------------

    def reason(self, form: Mapping[str, str], callback_id: int) -> VoiceResponse:
        """The caller finished recording (or pressed #): thank them and end the call."""
        callback = self.session.get(Callback, callback_id)
        return twiml.say_and_hang_up(callback.language if callback else self.config.default_language,
                                     "callback_thanks")

    def reason_status(self, form: Mapping[str, str], callback_id: int) -> VoiceResponse:
        """Twilio finished the recording: attach it to the queued callback and keep a copy of our own."""
        callback = self.session.get(Callback, callback_id)
        status = form.get("RecordingStatus", "")
        if callback is None:
            logger.warning("recording for unknown callback %s", callback_id)
            return twiml.empty()
        if status != "completed":
            logger.info("callback %s: no reason recorded (%s)", callback_id, status)
            return twiml.empty()
        recording = Recording(
            twilio_sid=form.get("RecordingSid", ""), call_sid=form.get("CallSid"), kind="callback-reason",
            source_url=form.get("RecordingUrl", ""), state="pending",
            duration_ms=int(float(form.get("RecordingDuration") or 0) * 1000),
        )
        self.session.add(recording)
        self.session.flush()
        callback.reason_recording_sid = recording.twilio_sid
        callback.reason_recording_url = recording.source_url
        callback.reason_recording_id = recording.id
        recording_id = recording.id
        self.unit.after_commit.append(lambda: _fetch(self, recording_id))
        return twiml.empty()

    # --- the agent-first call -------------------------------------------------------------------------

    def agent_answered(self, form: Mapping[str, str], callback_id: int) -> VoiceResponse:
        """The agent picked up: they hear who and why, then the customer's phone rings."""
        callback = self.session.get(Callback, callback_id)
        if callback is None or callback.state != "dialing" or callback.agent is None:
            return twiml.hang_up()  # a stale call for a callback that was requeued or closed meanwhile
        agent = callback.agent
        key = reservation_key(callback_id)
        self._live(lambda: presence(self.svc).transition(agent.identity, "busy", expect_call=key, call=key))
        callback.attempts += 1
        call = self._call(form["CallSid"])
        if call is None:  # placed by a job that died before recording it: Twilio says it is ours, so adopt it
            callback.current_call_sid = form["CallSid"]
            call = attempt_call(callback, form["CallSid"], agent.id, self.now)
            self.session.add(call)
            self.session.flush()
        self._event(call.id, "callback-agent-answered", {"agent": agent.identity, "attempt": callback.attempts})
        customer = self.session.get(Customer, callback.customer_id) if callback.customer_id else None
        return twiml.whisper_and_dial(
            agent.languages[0] if agent.languages else self.config.default_language,
            (customer.name if customer and customer.name else None) or _spoken_number(callback.phone),
            (playable_url(self.url_for, self.config.secret_key, callback.reason_recording_id)
             if callback.reason_recording_id else None),
            callback.phone,
            caller_id=self.config.twilio_caller_id or None,
            action_url=self.url_for("callbacks.customer_complete", callback=callback_id),
            customer_status_url=self.url_for("callbacks.customer_leg", callback=callback_id),
            timeout=self.config.ring_timeout_seconds * 2,  # a customer takes longer to reach a phone than an agent
        )

    def customer_leg(self, form: Mapping[str, str], callback_id: int) -> VoiceResponse:
        call = self._call(form.get("ParentCallSid", ""))
        if call is not None and form.get("CallStatus") == "in-progress" and call.answered_at is None:
            call.answered_at = self.now
            call.outcome = "answered"
            self._event(call.id, "callback-customer-answered", {"leg": form.get("CallSid")})
        return twiml.empty()

    def customer_complete(self, form: Mapping[str, str], callback_id: int) -> VoiceResponse:
        """The customer leg ended: the promise is kept, or retried with backoff inside its window, or missed."""
        callback = self.session.get(Callback, callback_id)
        call = self._call(form["CallSid"])
        if callback is None or callback.agent is None or callback.state != "dialing":
            return twiml.hang_up()
        agent = callback.agent
        status = form.get("DialCallStatus", "")
        if call is not None:
            self._event(call.id, "callback-customer", {"status": status})
        if status in ANSWERED:
            callback.state = "done"
            callback.closed_at = self.now
            callback.close_reason = "kept: the customer answered"
            if call is not None:
                if call.answered_at is None:
                    call.answered_at = self.now - timedelta(seconds=int(form.get("DialCallDuration") or 0))
                call.outcome = "answered"
                call.ended_at = self.now
            if callback.customer_id is not None:
                self.session.execute(update(Customer).where(Customer.id == callback.customer_id).values(
                    last_agent_id=agent.id, answered_calls=Customer.answered_calls + 1))
            self._wrap_up(agent.identity, reservation_key(callback_id))
            return twiml.hang_up()
        self._customer_missed(callback, agent, status)
        if call is not None:
            call.outcome = "no-answer"
            call.ended_at = self.now
        return twiml.say_and_hang_up(agent.languages[0] if agent.languages else callback.language,
                                     "customer_missed")

    def agent_status(self, form: Mapping[str, str], callback_id: int) -> VoiceResponse:
        """Progress of the call to the agent; an agent who does not answer sends the callback back in line."""
        callback = self.session.get(Callback, callback_id)
        status = form.get("CallStatus", "")
        call = self._call(form["CallSid"])
        if call is not None and status in (*AGENT_GONE, "completed"):
            call.ended_at = call.ended_at or self.now
        if callback is None or callback.agent is None or callback.state != "dialing" \
                or callback.current_call_sid not in (None, form["CallSid"]):
            return twiml.empty()
        agent = callback.agent
        key = reservation_key(callback_id)
        if status in AGENT_GONE:
            if self._live(lambda: presence(self.svc).transition(agent.identity, "away", expect_call=key)):
                agent.status = "away"
            requeue(callback, due_at=self.now, error=f"{agent.identity} did not answer ({status})")
            if call is not None:
                call.outcome = "agent-no-answer"
            self.unit.after_commit.append(self._dispatch_all)
        elif status == "completed":  # the agent hung up before the customer's outcome: try again soon
            requeue(callback, due_at=self.now, error=f"{agent.identity} hung up before the customer answered")
            if self._live(lambda: presence(self.svc).transition(agent.identity, "available", expect_call=key)):
                self._dispatch_to(agent.identity)
        return twiml.empty()

    # --- helpers -------------------------------------------------------------------------------------

    def _customer_missed(self, callback: Callback, agent: Agent, status: str) -> None:
        """Retry with growing gaps while the promise still stands; after that the miss is recorded, and shown."""
        retry_at = self.now + timedelta(minutes=self.config.callback_retry_minutes * callback.attempts)
        if callback.attempts < self.config.callback_max_attempts and retry_at <= callback.promised_by:
            requeue(callback, due_at=retry_at, error=f"the customer did not answer ({status})")
        else:
            callback.state = "missed"
            callback.closed_at = self.now
            callback.close_reason = f"the customer did not answer {callback.attempts} time(s) ({status})"
        key = reservation_key(callback.id)
        if self._live(lambda: presence(self.svc).transition(agent.identity, "available", expect_call=key)):
            self._dispatch_to(agent.identity)

    def _dispatch_all(self) -> None:
        dispatch(self.svc)


def _fetch(flow: CallFlow, recording_id: int) -> None:
    """Keep our own copy of the caller's words: the same fetch job that keeps complaint recordings."""
    enqueue_fetch(flow.svc, recording_id)


def _spoken_number(phone: str) -> str:
    """Digits read one by one, so a text-to-speech voice does not say 'six hundred million'."""
    return " ".join(phone.lstrip("+"))
