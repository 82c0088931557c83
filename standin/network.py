"""The simulated phone network: endpoints, call legs and their state machine, recordings and messages."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterable
from email.utils import format_datetime
from typing import Any

from . import audio
from .behaviours import Answer, Behaviour, Busy, Fail, NoAnswer
from .clock import Actor, Scheduler
from .faults import Faults
from .model import Call, Callback, Event, EventLog, Message, Recording, seconds
from .signals import SHORTEST_RECORDING, Bridge, ChildAnswered, ChildEnded, DialTarget, Hangup, Redirect
from .sms import SmsCenter
from .twiml import Document, Session
from .webhooks import CallbackQueue, WebhookResult

API_VERSION = "2010-04-01"
RECORDING_PROCESSING_SECONDS = 2.0  # Twilio needs a moment after a recording stops before it is available


class CallNotActive(Exception):
    """The call has ended, so it cannot be redirected or recorded (Twilio error 21220)."""


class Sids:
    """Twilio-shaped SIDs (two letters and 32 hex digits), reproducible when seeded."""

    def __init__(self, seed: int | None) -> None:
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        with self._lock:
            return prefix + f"{self._rng.getrandbits(128):032x}"

    @staticmethod
    def for_number(number: str) -> str:
        """The IncomingPhoneNumber SID of a number: stable, so it does not consume randomness."""
        return "PN" + hashlib.sha256(number.encode()).hexdigest()[:32]


class Network:
    """The phone network and Twilio's state: who answers, every leg, recording and message."""

    def __init__(
        self,
        *,
        account_sid: str,
        scheduler: Scheduler,
        callbacks: CallbackQueue,
        faults: Faults,
        sids: Sids,
        fetcher: Callable[[str, str, dict[str, str]], WebhookResult],
    ) -> None:
        self.account_sid = account_sid
        self.scheduler = scheduler
        self.faults = faults
        self.sids = sids
        self.fetch = fetcher
        self.base_url = ""
        self.default_behaviour: Behaviour = NoAnswer()
        self.log = EventLog()
        self.media_cache: dict[str, WebhookResult] = {}
        self._callbacks = callbacks
        self._behaviours: dict[str, Behaviour | Callable[[], Behaviour]] = {}
        self._calls: dict[str, Call] = {}
        self._recordings: dict[str, Recording] = {}
        # Softphones set up with the Voice JS SDK's `allowIncomingWhileBusy` (the SDK's default is False).
        self._take_while_busy: set[str] = set()
        self._seq = 0
        self._lock = threading.RLock()
        self.changed = threading.Condition(self._lock)
        self.sms = SmsCenter(self)

    # -- endpoints --------------------------------------------------------------------------------
    def set_behaviour(self, endpoint: str, behaviour: Behaviour | Callable[[], Behaviour]) -> None:
        """How `endpoint` (E.164 number, client:NAME or sip:URI) behaves from now on.

        A callable is asked afresh for every new leg, so a simulated person can act differently on each call.
        """
        with self._lock:
            self._behaviours[endpoint] = behaviour

    def allow_incoming_while_busy(self, endpoint: str, allowed: bool = True) -> None:
        """The client `endpoint` rings for a new call while on another (the Voice JS SDK's Device option)."""
        with self._lock:
            (self._take_while_busy.add if allowed else self._take_while_busy.discard)(endpoint)

    def on_a_call(self, endpoint: str, besides: Call | None = None) -> Call | None:
        """A leg to `endpoint` that was answered and is still up (other than `besides`): the softphone is busy."""
        with self._lock:
            return next((leg for leg in self._calls.values() if leg is not besides and leg.to == endpoint
                         and leg.direction != "inbound" and leg.answered_at is not None and not leg.ended), None)

    def behaviour_for(self, endpoint: str) -> Behaviour:
        with self._lock:
            found = self._behaviours.get(endpoint, self.default_behaviour)
        return found if isinstance(found, Behaviour) else found()

    # -- views ------------------------------------------------------------------------------------
    @property
    def calls(self) -> list[Call]:
        """Every leg, inbound, REST-created and dialled, in creation order."""
        with self._lock:
            return list(self._calls.values())

    @property
    def messages(self) -> list[Message]:
        """SMS sent through the REST API, each with its status history."""
        return self.sms.messages

    @property
    def recordings(self) -> list[Recording]:
        with self._lock:
            return [r for r in self._recordings.values() if not r.deleted]

    @property
    def events(self) -> list[Event]:
        return list(self.log.items)

    def call(self, sid: str) -> Call | None:
        with self._lock:
            return self._calls.get(sid)

    def message(self, sid: str) -> Message | None:
        return self.sms.message(sid)

    def recording(self, sid: str) -> Recording | None:
        with self._lock:
            found = self._recordings.get(sid)
            return None if found is None or found.deleted else found

    def legs_to(self, endpoint: str) -> list[Call]:
        """Legs that called `endpoint`, e.g. every offer made to an agent's client."""
        return [leg for leg in self.calls if leg.to == endpoint and leg.direction != "inbound"]

    @property
    def now(self) -> float:
        """Virtual seconds since the stand-in started."""
        return self.scheduler.now

    def wait_until(self, predicate: Callable[[Network], bool], timeout: float = 10.0) -> None:
        """Block (real seconds) until `predicate(network)` holds; re-checked on every change and as time flows."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"condition not met within {timeout}s")
                self.changed.wait(min(remaining, 0.01))

    def rfc2822(self, at: float) -> str:
        return format_datetime(self.scheduler.datetime_at(at))

    def recording_url(self, sid: str) -> str:
        return f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{sid}"

    # -- events -----------------------------------------------------------------------------------
    def record(self, subject: Call | Message | None, kind: str, **detail: Any) -> Event:
        """Append an event to the global log and to the call tree's or message's own log."""
        with self.changed:
            self._seq += 1
            sid = subject.sid if subject is not None else None
            event = Event(self._seq, self.scheduler.now, kind, sid, detail)
            self.log.items.append(event)
            if isinstance(subject, Call):
                subject.root.log.items.append(event)
            elif isinstance(subject, Message):
                subject.log.items.append(event)
            self.changed.notify_all()
            return event

    def _hold(self, call: Call) -> None:
        with self._lock:
            call.root.outstanding += 1

    def _release(self, call: Call) -> None:
        with self.changed:
            root = call.root
            root.outstanding -= 1
            if root.outstanding == 0 and all(leg.ended for leg in root.legs):
                root.done.set()
            self.changed.notify_all()

    def callback(self, subject: Call | Message, purpose: str, target: Callback, params: dict[str, str]) -> None:
        """Fire-and-forget webhook: logged now, its answer filled in when it arrives."""
        event = self.record(
            subject,
            "webhook",
            purpose=purpose,
            url=target.url,
            method=target.method,
            params=params,
            status=None,
            error_code=None,
        )
        if isinstance(subject, Call):
            self._hold(subject)

        def done(result: WebhookResult) -> None:
            with self.changed:
                event.detail.update(status=result.status, error_code=result.error_code, error=result.error,
                                    served_by=result.served_by)
                self.changed.notify_all()
            if isinstance(subject, Call):
                self._release(subject)

        key = subject.root.sid if isinstance(subject, Call) else subject.sid
        self._callbacks.submit(key, target.url, target.method, params, done)

    def request(self, call: Call, purpose: str, url: str, method: str, params: dict[str, str]) -> WebhookResult:
        """Webhook whose answer the call waits for (TwiML documents, actions, <Play> media)."""
        event = self.record(
            call,
            "webhook",
            purpose=purpose,
            url=url,
            method=method,
            params=params,
            status=None,
            error_code=None,
        )
        result = self.fetch(url, method, params)
        with self.changed:
            event.detail.update(status=result.status, error_code=result.error_code, error=result.error,
                                    served_by=result.served_by)
            self.changed.notify_all()
        return result

    # -- call parameters --------------------------------------------------------------------------
    def voice_params(self, call: Call) -> dict[str, str]:
        """Twilio's standard request parameters for a leg."""
        params = {
            "AccountSid": call.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call.sid,
            "CallStatus": call.status,
            "Called": call.to,
            "Caller": call.from_,
            "Direction": call.direction,
            "From": call.from_,
            "To": call.to,
        }
        if call.forwarded_from:
            params["ForwardedFrom"] = call.forwarded_from
        if call.caller_name:
            params["CallerName"] = call.caller_name
        if call.parent is not None:
            params["ParentCallSid"] = call.parent.sid
        return params

    def _progress(self, call: Call, event: str) -> None:
        """A call-progress event: logged, and sent to the leg's status callback if it subscribed."""
        target = call.status_callback
        if target is None or event not in target.events:
            return
        params = self.voice_params(call)
        params["CallStatus"] = {
            "initiated": "initiated",
            "ringing": "ringing",
            "answered": "in-progress",
        }.get(event, call.status)
        params.update(
            CallbackSource="call-progress-events",
            SequenceNumber=str(call.sequence),
            Timestamp=self.rfc2822(self.scheduler.now),
        )
        call.sequence += 1
        if event == "completed":
            params["CallDuration"] = str(call.duration or 0)
            for recording in call.recordings:
                if recording.source == "OutboundAPI":
                    params.update(
                        RecordingUrl=self.recording_url(recording.sid),
                        RecordingSid=recording.sid,
                        RecordingDuration=str(recording.duration or 0),
                    )
        self.callback(call, "status_callback", target, params)

    # -- creating legs ----------------------------------------------------------------------------
    def _new_call(self, **kwargs: Any) -> Call:
        call = Call(self.sids.new("CA"), account_sid=self.account_sid, created_at=self.scheduler.now, **kwargs)
        call.actor = self.scheduler.actor(f"call-{call.sid[:10]}")
        with self._lock:
            self._calls[call.sid] = call
            if call.parent is not None:
                call.parent.children.append(call)
        self._hold(call)
        self.record(
            call,
            "call.created",
            direction=call.direction,
            from_=call.from_,
            to=call.to,
            parent=call.parent.sid if call.parent else None,
        )
        return call

    def place_inbound_call(
        self,
        from_: str,
        to: str,
        url: str,
        method: str = "POST",
        *,
        status_callback: str | None = None,
        status_callback_method: str = "POST",
        status_callback_event: Iterable[str] = ("completed",),
        fallback_url: str | None = None,
        fallback_method: str = "POST",
        caller_hangup_after: float | None = None,
        forwarded_from: str | None = None,
        caller_name: str | None = None,
    ) -> Call:
        """Someone at `from_` calls our number `to`, whose voice webhook is `url`."""

        target = (
            Callback(status_callback, status_callback_method, frozenset(status_callback_event))
            if status_callback
            else None
        )
        call = self._new_call(
            direction="inbound",
            from_=from_,
            to=to,
            status="ringing",
            behaviour=self.behaviour_for(from_),
            status_callback=target,
            forwarded_from=forwarded_from,
            caller_name=caller_name,
        )
        call.started_at = call.created_at
        source = Document(url=url, method=method)
        fallback = Document(url=fallback_url, method=fallback_method) if fallback_url else None

        def run(actor: Actor) -> None:
            if caller_hangup_after is not None:
                self.scheduler.at(caller_hangup_after, lambda: actor.post(Hangup(by="caller")))
            Session(self, call, fallback).run(source)

        self.scheduler.start(call.actor, run)
        return call

    def create_call(
        self,
        *,
        to: str,
        from_: str,
        source: Any,
        fallback: Any = None,
        status_callback: Callback | None = None,
        timeout: float = 60.0,
        time_limit: float | None = None,
        record: dict[str, Any] | None = None,
        before_start: Callable[[Call], None] | None = None,
    ) -> Call:
        """A call started through the REST API (outbound-api); `before_start` sees it still queued."""

        call = self._new_call(
            direction="outbound-api",
            from_=from_,
            to=to,
            status="queued",
            behaviour=self.behaviour_for(to),
            status_callback=status_callback,
        )

        def run(actor: Actor) -> None:
            call.started_at = self.scheduler.now
            self._progress(call, "initiated")
            outcome = self.ring(call, timeout)
            if outcome != "answered":
                self.finish(call, outcome)
                return
            self.answer(call)
            if record is not None:
                self.start_recording(call, source="OutboundAPI", **record)
            talk = call.behaviour.talk if isinstance(call.behaviour, Answer) else None
            if talk is not None:
                self.scheduler.at(talk, lambda: actor.post(Hangup(by="callee")))
            if time_limit is not None:
                self.scheduler.at(time_limit, lambda: actor.post(Hangup(by="system")))
            Session(self, call, fallback).run(source)

        if before_start is not None:
            before_start(call)
        self.scheduler.start(call.actor, run)
        return call

    def dial(self, parent: Call, target: DialTarget) -> Call:
        """A child leg of <Dial> (Direction outbound-dial); it rings and reports to the dialling leg."""
        call = self._new_call(
            direction="outbound-dial",
            from_=target.caller_id or parent.from_,
            to=target.to,
            parent=parent,
            status="queued",
            behaviour=self.behaviour_for(target.to),
            status_callback=target.callback,
        )
        call.custom_parameters = dict(target.parameters)
        if target.parameters:
            self.record(call, "client.parameters", to=target.to, parameters=dict(target.parameters))
        self.scheduler.start(call.actor, lambda actor: self._run_dialled(call, parent))
        return call

    def _run_dialled(self, call: Call, parent: Call) -> None:
        assert call.actor is not None and parent.actor is not None
        call.started_at = self.scheduler.now
        self._progress(call, "initiated")
        outcome = self.ring(call, None)
        if outcome != "answered":
            self.finish(call, outcome)
            return
        self.answer(call)
        parent.actor.post(ChildAnswered(call))
        while True:
            message = call.actor.receive(None)
            if isinstance(message, Hangup):
                self.finish(call, "completed", by=message.by)
                return
            if isinstance(message, Bridge):
                break
        talk = call.behaviour.talk if isinstance(call.behaviour, Answer) else None
        deadline = None if talk is None else self.scheduler.now + talk
        while True:
            remaining = None if deadline is None else deadline - self.scheduler.now
            message = call.actor.receive(remaining)
            if message is None:
                self.finish(call, "completed", by="callee")
                return
            if isinstance(message, Hangup):
                self.finish(call, "completed", by=message.by)
                return
            if isinstance(message, Redirect):
                self.warn(call, "redirecting a dialled leg is not modelled; ignored")

    # -- the state machine ------------------------------------------------------------------------
    def set_status(self, call: Call, status: str) -> None:
        with self.changed:
            call.status = status
            call.updated_at = self.scheduler.now
        self.record(call, "call.status", status=status)

    def ring(self, call: Call, timeout: float | None) -> str:
        """Ring the endpoint until it answers, refuses, or `timeout` virtual seconds pass."""
        assert call.actor is not None
        behaviour = self._busy_softphone(call) or call.behaviour
        outcomes: dict[type, str] = {Answer: "answered", Busy: "busy", Fail: "failed"}
        outcome = outcomes.get(type(behaviour), "no-answer")
        wait = getattr(behaviour, "after", None)
        if not isinstance(behaviour, Fail) and (not isinstance(behaviour, Busy) or behaviour.after > 0):
            self.set_status(call, "ringing")
            self._progress(call, "ringing")
        if timeout is not None and (wait is None or wait >= timeout):
            wait, outcome = timeout, "no-answer"
        deadline = None if wait is None else self.scheduler.now + wait
        while True:
            remaining = None if deadline is None else deadline - self.scheduler.now
            message = call.actor.receive(remaining)
            if message is None:
                return outcome
            if isinstance(message, Hangup):
                call.hung_up_by = message.by
                return message.status or ("busy" if message.by == "callee" else "canceled")
            if isinstance(message, Redirect):
                self.warn(call, "redirect before answer is applied when the call is answered; ignored")

    def _busy_softphone(self, call: Call) -> Behaviour | None:
        """The Voice JS SDK ignores an incoming call while another is active (unless `allowIncomingWhileBusy`):
        nothing rings on the agent's screen, and Twilio hears no answer until its timeout."""
        if not call.to.startswith("client:") or call.to in self._take_while_busy:
            return None
        active = self.on_a_call(call.to, besides=call)
        if active is None:
            return None
        call.behaviour = NoAnswer()
        self.record(call, "client.ignored", to=call.to, active=active.sid)
        return call.behaviour

    def answer(self, call: Call) -> None:
        if call.answered_at is not None:
            return
        call.answered_at = self.scheduler.now
        self.set_status(call, "in-progress")
        self._progress(call, "answered")

    def finish(self, call: Call, status: str, by: str | None = None) -> None:
        """End a leg: final status, its recordings stop, callbacks go out, the dialling leg hears of it."""
        with self.changed:
            if call.ended:
                return
            call.ended_at = self.scheduler.now
            call.hung_up_by = call.hung_up_by or by
        self.set_status(call, status)
        for recording in list(call.recordings):
            if recording.status == "in-progress" and recording.source != "RecordVerb":
                self.stop_recording(recording)
        self._progress(call, "completed")
        for child in call.children:
            if not child.ended and child.actor is not None:
                child.actor.post(Hangup(by="system"))
        if call.parent is not None and call.parent.actor is not None:
            call.parent.actor.post(ChildEnded(call))
        self._release(call)

    def warn(self, call: Call, message: str) -> None:
        call.warnings.append(message)
        self.record(call, "warning", message=message)

    def error(self, call: Call, code: int, message: str, url: str | None = None) -> None:
        """A Twilio error on a leg (e.g. 11200 webhook failure, 12100 unparsable TwiML)."""
        call.errors.append({"code": code, "message": message, "url": url})
        self.record(call, "error", code=code, message=message, url=url)

    # -- control from outside ---------------------------------------------------------------------
    def hangup(self, call_sid: str) -> None:
        """The party on that leg hangs up now (the caller on an inbound call, the callee otherwise)."""
        call = self._live(call_sid)
        assert call.actor is not None
        call.actor.post(Hangup(by="caller" if call.direction == "inbound" else "callee"))

    def update_call(
        self,
        call_sid: str,
        *,
        status: str | None = None,
        url: str | None = None,
        method: str = "POST",
        twiml: str | None = None,
    ) -> Call:
        """REST update: end the call (completed/canceled) or continue it with other TwiML."""
        call = self._live(call_sid)
        assert call.actor is not None
        if status == "canceled" and call.status == "in-progress":
            return call  # Twilio only cancels calls that are queued or ringing
        if status in ("completed", "canceled"):
            call.actor.post(Hangup(by="api"))
        elif url or twiml:
            call.actor.post(Redirect(url=url, method=method, twiml=twiml))
        return call

    def _live(self, call_sid: str) -> Call:
        call = self.call(call_sid)
        if call is None:
            raise KeyError(call_sid)
        if call.ended:
            raise CallNotActive(call_sid)
        return call

    # -- recordings -------------------------------------------------------------------------------
    def start_recording(
        self,
        call: Call,
        *,
        source: str,
        channels: int = 1,
        track: str = "both",
        callback: Callback | None = None,
    ) -> Recording:
        """Start recording a live call; it stops when the call (or the recording <Dial>) ends."""
        if call.ended:
            raise CallNotActive(call.sid)
        now = self.scheduler.now
        recording = Recording(
            sid=self.sids.new("RE"),
            account_sid=self.account_sid,
            call_sid=call.sid,
            source=source,
            channels=channels,
            track=track,
            started_at=now,
            callback=callback,
            updated_at=now,
        )
        with self._lock:
            self._recordings[recording.sid] = recording
            call.recordings.append(recording)
        self.record(call, "recording", sid=recording.sid, status="in-progress", source=source)
        self._recording_progress(call, recording, "in-progress")
        return recording

    def stop_recording(self, recording: Recording, *, length: float | None = None, media: bytes | None = None) -> None:
        """Stop a recording; it becomes available (or absent) after Twilio's processing delay.

        `length` is the audio kept (trimmed <Record> audio is shorter than the time it ran).
        """
        call = self.call(recording.call_sid)
        assert call is not None
        with self.changed:
            if recording.status != "in-progress":
                return
            recording.ended_at = self.scheduler.now
            kept = recording.ended_at - recording.started_at if length is None else length
            recording.duration = seconds(kept)
            recording.status = "processing"
            recording.updated_at = recording.ended_at
        self._hold(call)

        def publish() -> None:
            absent = kept < SHORTEST_RECORDING
            if not absent and media is None:
                window = (recording.started_at, recording.started_at + kept)
                rendered = audio.render(call.segments, *window, recording.channels)
            with self.changed:
                if absent:
                    recording.status, recording.error_code, recording.duration = "absent", 16101, 0
                else:
                    recording.media = self.faults.corrupt(media if media is not None else rendered)
                    recording.status = "completed"
                recording.updated_at = self.scheduler.now
            self.record(
                call,
                "recording",
                sid=recording.sid,
                status=recording.status,
                duration=recording.duration,
                source=recording.source,
            )
            self._recording_progress(call, recording, recording.status)
            self._release(call)

        self.scheduler.at(RECORDING_PROCESSING_SECONDS, publish)

    def _recording_progress(self, call: Call, recording: Recording, status: str) -> None:
        target = recording.callback
        if target is None or status not in target.events:
            return
        params = {
            "AccountSid": recording.account_sid,
            "CallSid": recording.call_sid,
            "RecordingSid": recording.sid,
            "RecordingUrl": self.recording_url(recording.sid),
            "RecordingStatus": status,
            "RecordingChannels": str(recording.channels),
            "RecordingStartTime": self.rfc2822(recording.started_at),
            "RecordingSource": recording.source,
            "RecordingTrack": recording.track,
        }
        if status != "in-progress":
            params["RecordingDuration"] = str(recording.duration or 0)
        if recording.error_code is not None:
            params["ErrorCode"] = str(recording.error_code)
        self.callback(call, "recording_status_callback", target, params)

    def delete_recording(self, sid: str) -> bool:
        with self._lock:
            recording = self._recordings.get(sid)
            if recording is None or recording.deleted:
                return False
            recording.deleted = True
            recording.media = None
            return True
