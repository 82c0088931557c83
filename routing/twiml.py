"""TwiML builders: pure functions from a decision to a VoiceResponse, so views stay a few lines long."""

from __future__ import annotations

from dataclasses import dataclass

from twilio.twiml.voice_response import Dial, VoiceResponse

from directo.core.languages import say_language
from directo.core.states import CallbackKind
from routing import prompts
from routing.directory import CallerContext

# Twilio rings at most ten nouns of one <Dial> at once.
MAX_PARALLEL_NOUNS = 10
AGENT_LEG_EVENTS = "initiated ringing answered completed"


@dataclass(frozen=True)
class AgentTarget:
    """How an agent is reached: a softphone identity, or a phone number when they have one."""

    identity: str
    phone: str | None = None


def screen_pop(caller: CallerContext, call_sid: str) -> dict[str, str]:
    """The caller's context, carried to the agent's softphone as <Parameter>s of <Client>."""
    return {
        "callSid": call_sid,
        "callerNumber": caller.number or "withheld",
        "callerName": caller.name or "",
        "language": caller.language,
        "previousCalls": str(caller.previous_calls),
        "lastAgent": caller.previous_agent or "",
        "lastAgentName": caller.previous_agent_name or "",
        "openComplaints": ",".join(caller.open_complaints),
    }


def _add_target(dial: Dial, target: AgentTarget, status_url: str, parameters: dict[str, str]) -> None:
    if target.phone:
        dial.number(target.phone, status_callback=status_url, status_callback_event=AGENT_LEG_EVENTS)
        return
    client = dial.client(status_callback=status_url, status_callback_event=AGENT_LEG_EVENTS)
    client.identity(target.identity)
    for name, value in parameters.items():
        client.parameter(name=name, value=value)


def connect_agent(
    target: AgentTarget,
    caller: CallerContext,
    call_sid: str,
    *,
    action_url: str,
    agent_status_url: str,
    timeout: int,
    caller_id: str | None,
) -> VoiceResponse:
    """Ring one agent; the caller hears ringing (answerOnBridge), never a menu or music."""
    response = VoiceResponse()
    dial = Dial(action=action_url, method="POST", timeout=timeout, answer_on_bridge=True, caller_id=caller_id)
    _add_target(dial, target, agent_status_url, screen_pop(caller, call_sid))
    response.append(dial)
    return response


def ring_everyone(
    targets: list[AgentTarget],
    caller: CallerContext,
    call_sid: str,
    *,
    fallback_number: str | None,
    action_url: str,
    agent_status_url: str,
    timeout: int,
) -> VoiceResponse:
    """The Redis-outage fallback: ring every agent who may be at work at once; the first to answer takes it."""
    response = VoiceResponse()
    dial = Dial(action=action_url, method="POST", timeout=timeout, answer_on_bridge=True)
    parameters = screen_pop(caller, call_sid)
    reserved = 1 if fallback_number else 0
    for target in targets[: MAX_PARALLEL_NOUNS - reserved]:
        _add_target(dial, target, agent_status_url, parameters)
    if fallback_number:
        dial.number(fallback_number, status_callback=agent_status_url, status_callback_event=AGENT_LEG_EVENTS)
    response.append(dial)
    return response


def say_and_hang_up(language: str, key: str, **values: object) -> VoiceResponse:
    response = VoiceResponse()
    _say(response, language, key, **values)
    response.hangup()
    return response


def hang_up() -> VoiceResponse:
    response = VoiceResponse()
    response.hangup()
    return response


def empty() -> VoiceResponse:
    """The answer to a status callback: Twilio ignores its content, but it must be valid TwiML."""
    return VoiceResponse()


def _say(response: VoiceResponse, language: str, key: str, **values: object) -> None:
    response.say(prompts.text(language, key, **values), language=say_language(language))


def promise_callback(language: str, minutes: int, *, reason_action_url: str, reason_status_url: str) -> VoiceResponse:
    """The callback is already queued: say when we will call, then let the caller say why after a tone."""
    response = VoiceResponse()
    _say(response, language, "callback_promise", minutes=minutes)
    _say(response, language, "callback_reason")
    response.record(
        action=reason_action_url,
        method="POST",
        max_length=60,
        timeout=5,
        finish_on_key="#",
        play_beep=True,
        recording_status_callback=reason_status_url,
        recording_status_callback_event="completed absent",
    )
    _say(response, language, "callback_thanks")
    response.hangup()
    return response


def whisper_and_dial(
    language: str,
    kind: str,
    facts: dict[str, str],
    reason_url: str | None,
    customer: str,
    *,
    caller_id: str | None,
    action_url: str,
    customer_status_url: str,
    timeout: int,
) -> VoiceResponse:
    """Agent-first callback: the agent hears who and why (the caller's own words, or what is owed), then the
    customer rings."""
    response = VoiceResponse()
    _say(response, language, prompts.WHISPER[kind], **facts)
    if reason_url:
        _say(response, language, "whisper_reason")
        response.play(reason_url)
    elif kind == CallbackKind.CALL_BACK:
        _say(response, language, "whisper_no_reason")
    dial = Dial(action=action_url, method="POST", timeout=timeout, caller_id=caller_id)
    dial.number(customer, status_callback=customer_status_url, status_callback_event="answered completed")
    response.append(dial)
    return response
