"""Executes the app's TwiML on a call leg, verb by verb, as Twilio documents each verb."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn
from xml.etree import ElementTree

from . import audio
from .audio import Segment
from .model import RECORDING_EVENTS, Call, Callback, Recording, seconds
from .signals import SHORTEST_RECORDING, Bridge, ChildAnswered, ChildEnded, DialTarget, Hangup, Redirect
from .webhooks import XML_TYPES, resolve

if TYPE_CHECKING:
    from .network import Network

APPLICATION_ERROR = "We are sorry, an application error has occurred. Goodbye."
ENDLESS_LOOPS = 1000  # loop="0" means "until the call moves on"; bounded so a run always ends
BEEP_SECONDS = 0.5

_NOUN_CALLBACK = {"statusCallback", "statusCallbackEvent", "statusCallbackMethod", "url", "method"}
_AMD = {
    "machineDetection",
    "machineDetectionTimeout",
    "machineDetectionSpeechThreshold",
    "machineDetectionSpeechEndThreshold",
    "machineDetectionSilenceTimeout",
    "amdStatusCallback",
    "amdStatusCallbackMethod",
}
_RECORDING_CALLBACK = {
    "recordingStatusCallback",
    "recordingStatusCallbackMethod",
    "recordingStatusCallbackEvent",
}
ATTRIBUTES: dict[str, set[str]] = {
    "Response": set(),
    "Say": {"voice", "language", "loop"},
    "Play": {"loop", "digits"},
    "Pause": {"length"},
    "Record": {
        "action",
        "method",
        "timeout",
        "finishOnKey",
        "maxLength",
        "playBeep",
        "trim",
        "transcribe",
        "transcribeCallback",
        "storageUrl",
        "storageUrlMethod",
    }
    | _RECORDING_CALLBACK,
    "Dial": {
        "action",
        "method",
        "timeout",
        "callerId",
        "answerOnBridge",
        "record",
        "recordingTrack",
        "trim",
        "timeLimit",
        "hangupOnStar",
        "ringTone",
        "callReason",
        "referUrl",
        "referMethod",
        "sequential",
        "events",
    }
    | _RECORDING_CALLBACK,
    "Number": {"sendDigits", "byoc"} | _NOUN_CALLBACK | _AMD,
    "Client": _NOUN_CALLBACK,
    "Identity": set(),
    "Parameter": {"name", "value"},
    "Sip": {"username", "password"} | _NOUN_CALLBACK | _AMD,
    "Redirect": {"method"},
    "Hangup": set(),
    "Reject": {"reason"},
    "Gather": {
        "action",
        "method",
        "timeout",
        "finishOnKey",
        "numDigits",
        "input",
        "speechTimeout",
        "language",
        "hints",
        "partialResultCallback",
        "partialResultCallbackMethod",
        "profanityFilter",
        "actionOnEmptyResult",
        "speechModel",
        "enhanced",
        "bargeIn",
        "debug",
        "dtmfDetection",
    },
}
# Valid TwiML the stand-in does not simulate: logged as warnings, skipped.
UNMODELLED = {
    "Enqueue",
    "Leave",
    "Connect",
    "Start",
    "Stop",
    "Refer",
    "Pay",
    "Prompt",
    "Sms",
    "Echo",
    "Queue",
    "Conference",
    "Sim",
    "Application",
    "WhatsApp",
}


class CallEnded(Exception):
    """The leg is over (someone hung up, <Hangup>, <Reject>, or an application error)."""

    def __init__(self, by: str, status: str | None = None) -> None:
        super().__init__(by)
        self.by = by
        self.status = status


class Redirected(Exception):
    """The leg continues with another document (<Redirect>-like REST update)."""

    def __init__(self, document: Document) -> None:
        super().__init__(document.url)
        self.document = document


@dataclass(frozen=True)
class Document:
    """Where the next TwiML comes from: a URL (with extra parameters) or inline TwiML."""

    url: str | None = None
    method: str = "POST"
    twiml: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    purpose: str = "voice"


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def as_number(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def normalize_number(text: str) -> str:
    """Numbers in <Dial> as Twilio reads them: E.164 kept, unformatted US numbers completed."""
    text = text.strip()
    if ":" in text:
        return text
    digits = re.sub(r"[^\d]", "", text)
    if text.startswith("+"):
        return "+" + digits
    if len(digits) == 10:
        return "+1" + digits
    if len(digits) == 11 and digits.startswith("1"):
        return "+" + digits
    return text


class Session:
    """Runs documents on one leg until it ends; runs in the leg's own simulated party."""

    def __init__(self, network: Network, call: Call, fallback: Document | None = None) -> None:
        assert call.actor is not None
        self.network = network
        self.call = call
        self.actor = call.actor
        self.fallback = fallback
        self.verbs: dict[str, Callable[[ElementTree.Element, str], Document | None]] = {
            "Say": self._say,
            "Play": self._play,
            "Pause": self._pause,
            "Record": self._record,
            "Dial": self._dial,
            "Redirect": self._redirect,
            "Hangup": self._hangup,
            "Reject": self._reject,
            "Gather": self._gather,
        }

    @property
    def now(self) -> float:
        return self.network.scheduler.now

    # -- the document loop ------------------------------------------------------------------------
    def run(self, source: Document) -> None:
        document: Document | None = source
        try:
            while document is not None:
                try:
                    document = self._execute(document)
                except Redirected as redirect:
                    document = redirect.document
            self._end(None, "system")
        except CallEnded as ended:
            self._end(ended.status, ended.by)

    def _end(self, status: str | None, by: str) -> None:
        if status is None:
            if self.call.answered_at is not None:
                status = "completed"
            else:
                status = "canceled" if by in ("caller", "api") else "no-answer"
        self.network.finish(self.call, status, by=by)

    def _execute(self, document: Document) -> Document | None:
        self.check()
        verbs, base = self._load(document)
        if self.call.answered_at is None:
            first = verbs[0] if verbs else None
            waits = first is not None and (
                first.tag in ("Reject", "Redirect") or (first.tag == "Dial" and truthy(first.get("answerOnBridge")))
            )
            if not waits:
                self.network.answer(self.call)
        for verb in verbs:
            self.check()
            following = self._verb(verb, base)
            if following is not None:
                return following
        return None

    def _load(self, document: Document) -> tuple[list[ElementTree.Element], str]:
        """Fetch and parse a document; a failure is an application error, unless a fallback URL saves it."""
        if document.twiml is not None:
            text, base = document.twiml.encode(), document.url or ""
        else:
            assert document.url is not None
            params = {**self.network.voice_params(self.call), **document.params}
            result = self.network.request(self.call, document.purpose, document.url, document.method, params)
            if not result.ok:
                self._failed(document, result.error_code or 11200, result.error or "")
            if result.content_type.startswith("audio/"):
                self.network.media_cache[document.url] = result
                play = ElementTree.Element("Play")
                play.text = document.url
                return [play], document.url
            if result.content_type == "text/plain":
                say = ElementTree.Element("Say")
                say.text = result.body.decode(errors="replace")
                return [say], document.url
            if result.content_type and result.content_type not in XML_TYPES:
                self._failed(document, 12300, f"Invalid Content-Type {result.content_type}")
            text, base = result.body, document.url
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError as exc:
            self._failed(document, 12100, f"Document parse failure: {exc}")
        if root.tag != "Response":
            self._failed(document, 12100, f"Document parse failure: root element <{root.tag}>")
        self._validate(root)
        return list(root), base

    def _failed(self, document: Document, code: int, message: str) -> NoReturn:
        """Twilio's answer to a broken webhook: try the fallback URL, else apologise and hang up."""
        self.network.error(self.call, code, message, document.url)
        if self.fallback is not None and document.purpose == "voice":
            fallback, self.fallback = self.fallback, None
            params = {"ErrorCode": str(code), "ErrorUrl": document.url or ""}
            raise Redirected(Document(url=fallback.url, method=fallback.method, params=params, purpose="fallback"))
        self.network.answer(self.call)
        self._speak(APPLICATION_ERROR)
        raise CallEnded("system")

    def _validate(self, element: ElementTree.Element) -> None:
        """Unknown verbs and attributes are Twilio's warning 12200; the call goes on without them."""
        for node in element:
            known = ATTRIBUTES.get(node.tag)
            if known is None:
                if node.tag not in UNMODELLED:
                    self._twiml_error(f"<{node.tag}> is not a TwiML element")
                continue
            for attribute in node.attrib:
                if attribute not in known:
                    self._twiml_error(f"<{node.tag}> has no attribute '{attribute}'")
            if node.tag != "Say":  # what is inside <Say> is SSML, not TwiML
                self._validate(node)

    def _twiml_error(self, message: str) -> None:
        self.call.twiml_errors.append({"code": 12200, "message": message})
        self.network.record(self.call, "twiml_error", code=12200, message=message)

    def _verb(self, verb: ElementTree.Element, base: str) -> Document | None:
        self.network.record(
            self.call, "verb", verb=verb.tag, attributes=dict(verb.attrib), text=(verb.text or "").strip()
        )
        handler = self.verbs.get(verb.tag)
        if handler is not None:
            return handler(verb, base)
        if verb.tag in UNMODELLED:
            self.network.warn(self.call, f"<{verb.tag}> is not simulated; skipped")
        return None

    # -- waiting in virtual time ------------------------------------------------------------------
    def wait(self, duration: float | None) -> None:
        """Let `duration` virtual seconds pass; a hang-up or REST redirect interrupts."""
        deadline = None if duration is None else self.now + max(duration, 0.0)
        while True:
            remaining = None if deadline is None else deadline - self.now
            if remaining is not None and remaining <= 0:
                return
            message = self.actor.receive(remaining)
            if message is None:
                return
            self._interrupt(message)

    def check(self) -> None:
        """Act on messages that arrived while the leg was busy (e.g. during a webhook)."""
        while (message := self.actor.poll()) is not None:
            self._interrupt(message)

    def _interrupt(self, message: object) -> None:
        if isinstance(message, Hangup):
            raise CallEnded(message.by, message.status)
        if isinstance(message, Redirect):
            raise Redirected(Document(url=message.url, method=message.method, twiml=message.twiml, purpose="redirect"))
        # ChildAnswered/ChildEnded from a finished <Dial> need nothing more

    def _sound(self, samples: audio.array, side: int = 0) -> None:
        self.call.segments.append(Segment(self.now, samples, side))

    def _speak(self, text: str) -> None:
        self._sound(audio.say(text))
        self.wait(audio.say_seconds(text))

    def _loops(self, verb: ElementTree.Element) -> int:
        loop = int(as_number(verb.get("loop"), 1))
        return ENDLESS_LOOPS if loop == 0 else max(loop, 1)

    def _final_request(self, document: Document) -> None:
        """After the caller hung up Twilio still reports to the action URL, and ignores the answer."""
        params = {**self.network.voice_params(self.call), "CallStatus": "completed", **document.params}
        assert document.url is not None
        self.network.request(self.call, document.purpose, document.url, document.method, params)

    # -- verbs ------------------------------------------------------------------------------------
    def _say(self, verb: ElementTree.Element, base: str) -> None:
        text = "".join(verb.itertext())
        for _ in range(self._loops(verb)):
            self._speak(text)

    def _play(self, verb: ElementTree.Element, base: str) -> None:
        digits = verb.get("digits")
        if digits:
            self.wait(0.5 * len(digits))
            return
        url = resolve(base, verb.text or "")
        media = self.network.media_cache.get(url)
        if media is None:
            media = self.network.request(self.call, "play", url, "GET", {})
            if not media.ok:
                self.network.error(self.call, media.error_code or 11200, media.error or "", url)
                return
            self.network.media_cache[url] = media
        length = audio.media_seconds(media.body, media.content_type)
        samples = audio.samples_of(media.body)
        for _ in range(self._loops(verb)):
            if samples is not None:
                self._sound(samples)
            self.wait(length)

    def _pause(self, verb: ElementTree.Element, base: str) -> None:
        self.wait(as_number(verb.get("length"), 1))

    def _redirect(self, verb: ElementTree.Element, base: str) -> Document:
        return Document(url=resolve(base, verb.text or ""), method=verb.get("method", "POST"), purpose="redirect")

    def _hangup(self, verb: ElementTree.Element, base: str) -> None:
        raise CallEnded("system")

    def _reject(self, verb: ElementTree.Element, base: str) -> None:
        if self.call.answered_at is not None:
            self.network.warn(self.call, "<Reject> after the call was answered hangs up instead")
            raise CallEnded("system")
        raise CallEnded("system", "busy" if verb.get("reason") == "busy" else "no-answer")

    def _gather(self, verb: ElementTree.Element, base: str) -> Document | None:
        action = resolve(base, verb.get("action") or base)
        method = verb.get("method", "POST")
        for prompt in verb:
            if prompt.tag in ("Say", "Play", "Pause"):
                self._verb(prompt, base)
        inputs = (verb.get("input") or "dtmf").split()
        keys = self.call.digits.popleft() if "dtmf" in inputs and self.call.digits else None
        speech = self.call.speech.popleft() if keys is None and "speech" in inputs and self.call.speech else None
        if keys is None and speech is None:
            self.wait(as_number(verb.get("timeout"), 5))
            if truthy(verb.get("actionOnEmptyResult")):
                return Document(url=action, method=method, params={"Digits": ""}, purpose="action")
            return None
        params: dict[str, str] = {}
        if keys is not None:
            self.wait(1.0 + 0.3 * len(keys))
            finish = verb.get("finishOnKey", "#")
            if keys and keys[-1] in finish:
                params["FinishedOnKey"] = keys[-1]
                keys = keys[:-1]
            limit = int(as_number(verb.get("numDigits"), 0))
            params["Digits"] = keys[:limit] if limit > 0 else keys
        else:
            self.wait(audio.say_seconds(speech or ""))
            params.update(SpeechResult=speech or "", Confidence="0.9")
        return Document(url=action, method=method, params=params, purpose="action")

    def _recording_callback(self, verb: ElementTree.Element, base: str) -> Callback | None:
        url = verb.get("recordingStatusCallback")
        if not url:
            return None
        events = frozenset(re.split(r"[\s,]+", verb.get("recordingStatusCallbackEvent", "completed").strip()))
        unknown = events - RECORDING_EVENTS
        if unknown:
            self._twiml_error(f"unknown recordingStatusCallbackEvent {sorted(unknown)}")
        return Callback(resolve(base, url), verb.get("recordingStatusCallbackMethod", "POST"), events)

    def _record(self, verb: ElementTree.Element, base: str) -> Document | None:
        action = Document(
            url=resolve(base, verb.get("action") or base), method=verb.get("method", "POST"), purpose="action"
        )
        behaviour = self.call.behaviour
        voice = audio.wav_seconds(behaviour.audio) if behaviour.audio else None
        speaking = voice if voice is not None else behaviour.speech_seconds
        silence_timeout = as_number(verb.get("timeout"), 5)
        max_length = as_number(verb.get("maxLength"), 3600) or 3600
        key = (
            behaviour.finish_key
            if behaviour.finish_key and behaviour.finish_key in verb.get("finishOnKey", "1234567890*#")
            else None
        )
        if behaviour.hangup_after_speech:
            planned, digits = speaking, "hangup"
        elif key:
            planned, digits = speaking, key
        elif silence_timeout > 0:
            planned, digits = speaking + silence_timeout, ""
        else:
            planned, digits = max_length, ""
        if planned > max_length:
            planned, digits = max_length, ""
        if verb.get("playBeep", "true").lower() != "false":
            self._sound(audio.beep())
            self.wait(BEEP_SECONDS)
        recording = self.network.start_recording(
            self.call, source="RecordVerb", callback=self._recording_callback(verb, base)
        )
        started = self.now
        ended: CallEnded | None = None
        try:
            self.wait(planned)
        except CallEnded as hangup:
            ended, digits = hangup, "hangup"
        except Redirected:
            self._stop_record(verb, recording, started, speaking)
            raise
        if digits == "hangup" and ended is None:
            ended = CallEnded("caller")
        spoken, kept = self._stop_record(verb, recording, started, speaking)
        if spoken < SHORTEST_RECORDING:
            # Twilio does not request the action URL for an empty recording; it moves to the next verb
            if ended is not None:
                raise ended
            return None
        action = Document(
            url=action.url,
            method=action.method,
            purpose="action",
            params={
                "RecordingUrl": self.network.recording_url(recording.sid),
                "RecordingSid": recording.sid,
                "RecordingDuration": str(seconds(kept)),
                "Digits": digits,
            },
        )
        if ended is not None:
            self._final_request(action)
            raise ended
        return action

    def _stop_record(
        self, verb: ElementTree.Element, recording: Recording, started: float, speaking: float
    ) -> tuple[float, float]:
        """Stop a <Record>: the seconds the party spoke, and the seconds kept (silence trimmed by default)."""
        elapsed = self.now - started
        spoken = min(speaking, elapsed)
        kept = spoken if verb.get("trim", "trim-silence") == "trim-silence" else elapsed
        self.network.stop_recording(recording, length=kept, media=self._recorded_voice(started, spoken, kept))
        return spoken, kept

    def _recorded_voice(self, started: float, spoken: float, kept: float) -> bytes:
        """The party's voice as recorded: the WAV its behaviour provides, or synthesised speech."""
        provided = self.call.behaviour.audio
        if provided is not None and spoken >= (audio.wav_seconds(provided) or 0):
            samples = audio.samples_of(provided)
            if samples is not None:
                self.call.segments.append(Segment(started, samples, 0))
            return provided
        samples = audio.speech(spoken, zlib.crc32(self.call.sid.encode()) + len(self.call.segments))
        self.call.segments.append(Segment(started, samples[:], 0))
        samples.extend(audio.silence(kept - spoken))
        return audio.wav(samples)

    # -- <Dial> -----------------------------------------------------------------------------------
    def _dial_targets(self, verb: ElementTree.Element, base: str) -> list[DialTarget]:
        caller_id = verb.get("callerId")
        nouns = [noun for noun in verb if noun.tag in ("Number", "Client", "Sip")]
        for noun in verb:
            if noun.tag in UNMODELLED:
                self.network.warn(self.call, f"<Dial><{noun.tag}> is not simulated; skipped")
        if not nouns and (verb.text or "").strip():
            return [DialTarget(to=normalize_number(verb.text or ""), caller_id=caller_id)]
        targets = []
        for noun in nouns:
            if noun.get("url"):
                self.network.warn(self.call, f"<{noun.tag} url> (whisper TwiML) is not simulated; ignored")
            parameters: dict[str, str] = {}
            if noun.tag == "Client":
                identity = noun.find("Identity")
                name = (identity.text if identity is not None else noun.text) or ""
                to = "client:" + name.strip()
                parameters = {p.get("name", ""): p.get("value", "") for p in noun.findall("Parameter")}
            elif noun.tag == "Sip":
                to = (noun.text or "").strip()
            else:
                to = normalize_number(noun.text or "")
            callback = None
            if noun.get("statusCallback"):
                events = frozenset((noun.get("statusCallbackEvent") or "completed").replace(",", " ").split())
                callback = Callback(
                    resolve(base, noun.get("statusCallback", "")),
                    noun.get("statusCallbackMethod", "POST"),
                    events,
                )
            targets.append(DialTarget(to=to, caller_id=caller_id, callback=callback, parameters=parameters))
        return targets

    def _dial(self, verb: ElementTree.Element, base: str) -> Document | None:
        targets = self._dial_targets(verb, base)
        if not targets:
            self._twiml_error("<Dial> has nothing to dial")
            return None
        action_url = resolve(base, verb.get("action", "")) if verb.get("action") else None
        record = verb.get("record", "do-not-record")
        dual = record.endswith("-dual")
        recording_callback = self._recording_callback(verb, base)
        recording = None
        if record.startswith("record-from-ringing"):
            recording = self.network.start_recording(
                self.call, source="DialVerb", channels=2 if dual else 1, callback=recording_callback
            )
        legs = [self.network.dial(self.call, target) for target in targets]
        outcome = _DialOutcome(legs)
        ring_deadline = self.now + as_number(verb.get("timeout"), 30)
        time_limit = as_number(verb.get("timeLimit"), 14400)
        bridge_deadline = ring_deadline
        while outcome.status is None:
            message = self.actor.receive(max(bridge_deadline - self.now, 0.0))
            if message is None:
                outcome.timed_out()
            elif isinstance(message, ChildAnswered) and message.leg in legs:
                if outcome.winner is None:
                    self.network.answer(self.call)
                    outcome.bridge(message.leg, self.now)
                    bridge_deadline = self.now + time_limit
                    if record.startswith("record-from-answer"):
                        recording = self.network.start_recording(
                            self.call,
                            source="DialVerb",
                            channels=2 if dual else 1,
                            callback=recording_callback,
                        )
                else:
                    message.leg.actor.post(Hangup(by="system"))  # type: ignore[union-attr]
            elif isinstance(message, ChildEnded) and message.leg in legs:
                outcome.ended(message.leg)
            elif isinstance(message, Hangup):
                outcome.abandon(CallEnded(message.by, message.status))
            elif isinstance(message, Redirect):
                outcome.abandon(
                    Redirected(
                        Document(url=message.url, method=message.method, twiml=message.twiml, purpose="redirect")
                    )
                )
        if outcome.bridged_at is not None:
            self.call.segments.extend(
                audio.conversation(outcome.bridged_at, self.now, zlib.crc32(self.call.sid.encode()))
            )
        if recording is not None:
            self.network.stop_recording(recording)
        params = outcome.params(self.now)
        if recording is not None:
            params.update(
                RecordingUrl=self.network.recording_url(recording.sid),
                RecordingSid=recording.sid,
                RecordingDuration=str(recording.duration or 0),
            )
        self.network.record(self.call, "dial", **{key: params[key] for key in sorted(params)})
        if isinstance(outcome.interruption, Redirected):
            raise outcome.interruption
        action = (
            Document(url=action_url, method=verb.get("method", "POST"), params=params, purpose="action")
            if action_url
            else None
        )
        if isinstance(outcome.interruption, CallEnded):
            if action is not None:
                self._final_request(action)
            raise outcome.interruption
        return action


class _DialOutcome:
    """The bookkeeping of one <Dial>: who rang, who won, and the DialCallStatus it comes to."""

    def __init__(self, legs: list[Call]) -> None:
        self.legs = legs
        self.winner: Call | None = None
        self.bridged_at: float | None = None
        self.status: str | None = None
        self.interruption: CallEnded | Redirected | None = None

    def _hang_up_others(self, status: str | None, keep: Call | None = None) -> None:
        for leg in self.legs:
            if leg is not keep and not leg.ended and leg.actor is not None:
                leg.actor.post(Hangup(by="system", status=None if leg.answered_at else status))

    def bridge(self, leg: Call, now: float) -> None:
        """First to answer wins; the others stop ringing."""
        self.winner, self.bridged_at = leg, now
        assert leg.actor is not None
        leg.actor.post(Bridge())
        self._hang_up_others("canceled", keep=leg)

    def timed_out(self) -> None:
        """No answer before the Dial timeout, or the bridged call reached timeLimit."""
        if self.winner is None:
            self._hang_up_others("no-answer")
            self.status = "no-answer"
        else:
            self._hang_up_others(None)
            self.status = "completed"

    def ended(self, leg: Call) -> None:
        if leg is self.winner:
            self.status = "completed"
        elif self.winner is None and all(other.ended for other in self.legs):
            statuses = {other.status for other in self.legs}
            self.status = next(s for s in ("busy", "no-answer", "failed", "canceled", "completed") if s in statuses)

    def abandon(self, interruption: CallEnded | Redirected) -> None:
        """The caller hung up or the call was redirected: every dialled leg goes."""
        self.interruption = interruption
        self._hang_up_others("canceled")
        self.status = "completed" if self.winner is not None else "canceled"

    def params(self, now: float) -> dict[str, str]:
        """The Dial action's own parameters."""
        leg = self.winner or self.legs[-1]
        params = {
            "DialCallStatus": self.status or "failed",
            "DialCallSid": leg.sid,
            "DialBridged": "true" if self.winner is not None else "false",
        }
        if self.winner is not None and self.winner.answered_at is not None:
            params["DialCallDuration"] = str(seconds(now - self.winner.answered_at))
        return params
