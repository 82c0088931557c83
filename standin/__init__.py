"""A faithful local stand-in for Twilio: its REST API and the phone network behind it, in virtual time."""

from __future__ import annotations

from .behaviours import Answer, Behaviour, Busy, Fail, NoAnswer
from .model import Call, Event, Message, Recording
from .server import StandIn

__all__ = [
    "Answer",
    "Behaviour",
    "Busy",
    "Call",
    "Event",
    "Fail",
    "Message",
    "NoAnswer",
    "Recording",
    "StandIn",
]
