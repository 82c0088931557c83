"""The production app plus two reference endpoints the webhooks are measured against, served as `directo run`
serves it (`web`: voice.web, the reference endpoints under /voice/ so they run on the webhooks' threads too).

- the floor: a trivial signed TwiML endpoint (signature check plus `<Hangup/>`);
- the bound: the least any routed call can cost: the floor plus one Redis script (the routing snapshot, the
  first of the two round trips that the pure policy between snapshot and reservation needs) and the
  `<Dial>` with the caller's context that a routed call answers with. No database, nothing written.
"""

from __future__ import annotations

import time

from flask import Response, current_app, request
from twilio.twiml.voice_response import VoiceResponse

from routing import twiml
from routing.directory import CallerContext
from routing.presence import presence as live_presence
from voice import create_app
from voice.auth import csrf
from voice.signature import twilio_signed
from voice.web import WebApp
from voice.webhooks import external_url

app = create_app()
web = WebApp(app)


def _xml(response: VoiceResponse) -> Response:
    return Response(str(response), mimetype="text/xml")


@app.post("/voice/bench/floor")
@csrf.exempt  # like the real webhooks: Twilio authenticates with its signature, not a CSRF token
@twilio_signed
def floor() -> Response:
    response = VoiceResponse()
    response.hangup()
    return _xml(response)


@app.post("/voice/bench/bound")
@csrf.exempt
@twilio_signed
def bound() -> Response:
    presence = live_presence(current_app.extensions["directo"])
    caller = CallerContext(number=request.form.get("From"), language="es")
    snapshot, _ = presence.snapshot(caller.language, None, time.time())
    agent = snapshot.idle[0].identity if snapshot.idle else "nobody"
    return _xml(twiml.connect_agent(
        twiml.AgentTarget(agent), caller, request.form["CallSid"],
        action_url=external_url("voice.dial_complete", attempt=1), agent_status_url=external_url("voice.agent_leg"),
        timeout=20, caller_id=caller.number,
    ))
