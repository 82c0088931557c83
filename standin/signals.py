"""What simulated parties say to one another (hang up, redirect, a child leg answered...), apart from the network
that carries it, so the TwiML interpreter and the network each import this and not each other."""

from __future__ import annotations

from dataclasses import dataclass, field

from .model import Call, Callback

SHORTEST_RECORDING = 1.0  # shorter recordings are dropped as `absent` (Twilio error 16101)


@dataclass(frozen=True)
class Hangup:
    """End a leg; `status` forces its final status (e.g. no-answer when a Dial times out)."""

    by: str  # caller, callee, api, system
    status: str | None = None


@dataclass(frozen=True)
class Redirect:
    """Continue a live call with other TwiML (REST update with Url or Twiml)."""

    url: str | None
    method: str = "POST"
    twiml: str | None = None


@dataclass(frozen=True)
class ChildAnswered:
    leg: Call


@dataclass(frozen=True)
class ChildEnded:
    leg: Call


@dataclass(frozen=True)
class Bridge:
    """The dialling leg connects an answered child leg to the caller."""


@dataclass(frozen=True)
class DialTarget:
    """One <Number>, <Client> or <Sip> of a <Dial>."""

    to: str
    caller_id: str | None = None
    callback: Callback | None = None
    parameters: dict[str, str] = field(default_factory=dict)
