"""The production app plus one trivial signed TwiML endpoint: the floor the webhooks are measured against."""

from __future__ import annotations

from flask import Response
from twilio.twiml.voice_response import VoiceResponse

from voice import create_app
from voice.auth import csrf
from voice.signature import twilio_signed

app = create_app()


@app.post("/bench/floor")
@csrf.exempt  # like the real webhooks: Twilio authenticates with its signature, not a CSRF token
@twilio_signed
def floor() -> Response:
    response = VoiceResponse()
    response.hangup()
    return Response(str(response), mimetype="text/xml")
