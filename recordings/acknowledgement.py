"""The complaint acknowledgement a caller hears when the agent leg ends (filled in by the complaints work)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session
from twilio.twiml.voice_response import VoiceResponse

from directo.models import Call


def acknowledgement_twiml(session: Session, call: Call, url_for: Callable[..., str]) -> VoiceResponse | None:
    """TwiML keeping the caller on the line to hear their complaint reference; None when the call has none."""
    return None
