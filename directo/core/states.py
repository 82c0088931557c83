"""Every state Directo knows, named once (as rq's `JobStatus`), with the named sets the code asks about.

Our own entities' states are stored as these strings in the database and in Redis; Twilio's vocabulary, which
reaches us in webhooks, is named here too, so no other module spells a state. Values are the stored strings:
changing one is a migration.
"""

from __future__ import annotations

from enum import StrEnum


class CallOutcome(StrEnum):
    """Where a call stands in the call log (`calls.outcome`)."""

    ROUTING = "routing"  # recorded, looking for a person
    RINGING = "ringing"  # an agent's phone is ringing
    ANSWERED = "answered"  # a person took it (ended_at says whether it is over)
    NO_AGENT = "no-agent"  # nobody free and a withheld number: nobody to call back
    CALLBACK = "callback"  # nobody free: a callback was promised
    ABANDONED = "abandoned"  # the caller hung up before anyone answered
    FALLBACK = "fallback"  # the live state was down: every agent was rung at once
    NO_ANSWER = "no-answer"  # a callback's customer did not answer
    AGENT_NO_ANSWER = "agent-no-answer"  # a callback's agent did not answer


# Calls whose end has not been heard yet, and calls that may still hold an agent.
UNFINISHED = frozenset({CallOutcome.ROUTING, CallOutcome.RINGING})
LIVE = frozenset({CallOutcome.RINGING, CallOutcome.ANSWERED})


class CallbackState(StrEnum):
    """A callback promise (`callbacks.state`): queued -> reserved -> dialing -> done; or missed, cancelled."""

    QUEUED = "queued"  # waiting for a free agent
    RESERVED = "reserved"  # an agent is held for it; its job will ring them
    DIALING = "dialing"  # the agent-first call is placed
    DONE = "done"  # kept (the customer answered) or no longer needed (they reached us)
    MISSED = "missed"  # the customer could not be reached inside the promise
    CANCELLED = "cancelled"  # a supervisor withdrew it


class CallbackKind(StrEnum):
    """Why we owe a customer a call (`callbacks.kind`): all are kept by the same agent-first machinery."""

    CALL_BACK = "call-back"  # they called when nobody was free: within minutes, as promised on the call
    PROMISE = "promise"  # an agent said "I will call you on <date> about <what>": that agent first, at that time
    COMPLAINT_TOLD = "complaint-told"  # a complaint's owner explains its resolution
    COMPLAINT_FOLLOWUP = "complaint-followup"  # a complaint's owner asks whether the remedy worked


# Callbacks with an owner and a date: the owner is rung first at the time; a call from the customer does not close
# them (what is due still has to be said).
DATED = frozenset({CallbackKind.PROMISE, CallbackKind.COMPLAINT_TOLD, CallbackKind.COMPLAINT_FOLLOWUP})

OPEN = frozenset({CallbackState.QUEUED, CallbackState.RESERVED, CallbackState.DIALING})
# Callbacks that hold an agent: the agent's presence says `callback:<id>` meanwhile.
HELD = frozenset({CallbackState.RESERVED, CallbackState.DIALING})
CLOSED = frozenset({CallbackState.DONE, CallbackState.MISSED, CallbackState.CANCELLED})


class AgentStatus(StrEnum):
    """An agent's live state in Redis (and, for what they asked for, `agents.status`).

    An agent on a call (RESERVED, BUSY) is let go by one event only: the final status of **their own leg**, never
    another leg of the same call ending (the customer's, a complaint acknowledgement the caller stays for, a
    promise's customer). On an inbound call that is `routing.inbound:InboundCall.agent_leg` (`completed`:
    WRAPUP_SECONDS); on a callback of any kind, `routing.callback_calls:CallbackCall.agent_status` (`completed`:
    WRAPUP_SECONDS after a conversation, CALLBACK_ATTEMPT_WRAPUP_SECONDS after an attempt that reached nobody).
    Both move them through `routing.agents.wrap_up`; a ring that ends unanswered (no-answer, busy, failed) sets
    them AWAY. The Voice JS SDK ignores a call that arrives while one is active, so freeing an agent earlier would
    ring them during a call, and set them away for not answering it.
    """

    AVAILABLE = "available"
    RESERVED = "reserved"  # chosen for a call or callback; their phone is about to ring or ringing
    BUSY = "busy"  # talking
    WRAPUP = "wrapup"  # writing up the call that just ended
    AWAY = "away"
    OFFLINE = "offline"


# What an agent may ask for themselves; what a call holds them in.
SETTABLE = (AgentStatus.AVAILABLE, AgentStatus.AWAY, AgentStatus.OFFLINE)
ON_A_CALL = frozenset({AgentStatus.RESERVED, AgentStatus.BUSY})
# How the roster shows an agent who may no longer log in (not a presence: they are out of routing).
INACTIVE = "inactive"


class ComplaintState(StrEnum):
    """The life of a complaint, from the reference the caller keeps to the customer's verdict on the remedy."""

    RECEIVED = "received"  # reference issued, spoken, texted, recorded; owned by the agent who flagged it
    RESOLVED = "resolved"  # what went wrong, the remedy and the cause are written down
    TOLD = "told"  # the customer was told the resolution (by phone, or by SMS when unreachable)
    CLOSED = "closed"  # the customer said the remedy worked
    REOPENED = "reopened"  # the customer said it did not: back to its owner


COMPLAINT_OPEN = frozenset({ComplaintState.RECEIVED, ComplaintState.RESOLVED, ComplaintState.TOLD,
                            ComplaintState.REOPENED})
# Complaints whose owner has to write a resolution; and those whose customer has not been told it yet (the legal
# deadline runs until they are).
TO_RESOLVE = frozenset({ComplaintState.RECEIVED, ComplaintState.REOPENED})
UNANSWERED = TO_RESOLVE | {ComplaintState.RESOLVED}


class ToldVia(StrEnum):
    """How a customer was told their complaint's resolution (`complaints.told_via`)."""

    CALL = "call"  # a person explained it on the phone
    SMS = "sms"  # they could not be reached inside the deadline: a text in their language


class RecordingState(StrEnum):
    """Our copy of a recording (`recordings.state`)."""

    PENDING = "pending"  # Twilio has it; our copy is not stored yet
    STORED = "stored"
    FAILED = "failed"  # after the last retry, or Twilio failed to record
    ABSENT = "absent"  # Twilio had nothing to record (silence, too short)


class SmsState(StrEnum):
    """A text message to a customer (`sms_messages.state`); it only moves forward, in RANK order."""

    PENDING = "pending"
    ACCEPTED = "accepted"  # queued at Twilio
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"


class SmsTopic(StrEnum):
    """What a text to a customer is about (`sms_messages.topic`); each is sent, and re-sent, until delivered."""

    COMPLAINT_REFERENCE = "complaint-reference"  # the reference of a complaint, as proof (Ley 44/2006)
    COMPLAINT_RESOLUTION = "complaint-resolution"  # the resolution, when the customer could not be reached
    PROMISE = "promise"  # the date and time an agent promised to call


SMS_RANK = {SmsState.PENDING: 0, SmsState.ACCEPTED: 1, SmsState.SENT: 2, SmsState.UNDELIVERED: 3,
            SmsState.FAILED: 3, SmsState.DELIVERED: 4}
SMS_IN_FLIGHT = frozenset({SmsState.ACCEPTED, SmsState.SENT})
SMS_FINAL = frozenset({SmsState.DELIVERED, SmsState.UNDELIVERED, SmsState.FAILED})


class Role(StrEnum):
    AGENT = "agent"
    SUPERVISOR = "supervisor"


class Direction(StrEnum):
    INBOUND = "inbound"
    CALLBACK = "callback"  # an agent-first call placed to keep a promise


# --- Twilio's vocabulary, as its webhooks and REST answers spell it -------------------------------------------

class CallStatus(StrEnum):
    """Twilio's `CallStatus` (and `DialCallStatus`, which adds `answered`)."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    ANSWERED = "answered"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"


FINAL_CALL_STATUSES = frozenset({CallStatus.COMPLETED, CallStatus.BUSY, CallStatus.FAILED, CallStatus.NO_ANSWER,
                                 CallStatus.CANCELED})
# A <Dial> that reached the person (DialCallStatus), and one that did not.
CONNECTED = frozenset({CallStatus.COMPLETED, CallStatus.ANSWERED})
NOT_REACHED = frozenset({CallStatus.NO_ANSWER, CallStatus.BUSY, CallStatus.FAILED})
# The call to an agent ended without them (a callback's agent-first leg).
AGENT_GONE = NOT_REACHED | {CallStatus.CANCELED}
# The status callbacks asked for on an agent's leg.
AGENT_LEG_EVENTS = (CallStatus.INITIATED, CallStatus.RINGING, CallStatus.ANSWERED, CallStatus.COMPLETED)


class RecordingStatus(StrEnum):
    """Twilio's `RecordingStatus`: the URL is usable only once completed."""

    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    ABSENT = "absent"
    FAILED = "failed"


# Twilio's `MessageStatus` -> our SMS state.
MESSAGE_STATUS = {"queued": SmsState.ACCEPTED, "accepted": SmsState.ACCEPTED, "scheduled": SmsState.ACCEPTED,
                  "sending": SmsState.SENT, "sent": SmsState.SENT, "delivered": SmsState.DELIVERED,
                  "undelivered": SmsState.UNDELIVERED, "failed": SmsState.FAILED, "read": SmsState.DELIVERED}
