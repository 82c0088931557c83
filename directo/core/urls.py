"""The URLs Twilio calls Directo on, named once: the web edge registers these rules, and anything that must give
Twilio a URL (a webhook's TwiML, a job placing a call, the sweep re-sending an SMS) builds it from the same table
with a builder it is handed, so code below the web never needs a request to know where Twilio should call."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from werkzeug.routing import Map, Rule

# Builds an absolute URL for an endpoint name; values the rule does not take become the query string.
UrlFor = Callable[..., str]

TWILIO_ROUTES = Map([
    Rule("/voice/incoming", endpoint="voice.incoming"),
    Rule("/voice/dial-complete", endpoint="voice.dial_complete"),
    Rule("/voice/agent-leg", endpoint="voice.agent_leg"),
    Rule("/voice/status", endpoint="voice.status"),
    Rule("/voice/rescued/dial-complete", endpoint="rescue.dial_complete"),
    Rule("/voice/rescued/agent-leg", endpoint="rescue.agent_leg"),
    Rule("/voice/callbacks/reason", endpoint="callbacks.reason"),
    Rule("/voice/callbacks/reason-status", endpoint="callbacks.reason_status"),
    Rule("/voice/callbacks/agent-answered", endpoint="callbacks.agent_answered"),
    Rule("/voice/callbacks/agent-status", endpoint="callbacks.agent_status"),
    Rule("/voice/callbacks/customer-leg", endpoint="callbacks.customer_leg"),
    Rule("/voice/callbacks/customer-complete", endpoint="callbacks.customer_complete"),
    Rule("/voice/complaints/acknowledge", endpoint="complaints.twilio.acknowledge"),
    Rule("/voice/complaints/spoken", endpoint="complaints.twilio.spoken"),
    Rule("/voice/complaints/recording-status", endpoint="complaints.twilio.recording_status"),
    Rule("/voice/complaints/sms-status", endpoint="complaints.twilio.sms_status"),
    Rule("/media/recordings/<int:recording_id>/<int:expires>/<token>", endpoint="media.recording"),
])


class NoPublicUrl(RuntimeError):
    """Twilio must be given a URL, and nothing says where Directo is reachable."""


def path(endpoint: str) -> str:
    """The rule of an endpoint, for the web edge to register its view on."""
    for rule in TWILIO_ROUTES.iter_rules(endpoint):
        return rule.rule
    raise KeyError(endpoint)


def public_urls(base_url: str) -> UrlFor:
    """Absolute URLs under `base_url` (PUBLIC_BASE_URL, or the request's own root on the web edge).

    Without a base the builder still exists, and says what to set when something asks it for a URL.
    """
    if not base_url:
        def missing(endpoint: str, **_: object) -> str:
            raise NoPublicUrl(f"PUBLIC_BASE_URL is not set: Twilio could not reach {endpoint}")

        return missing
    parts = urlsplit(base_url.rstrip("/"))
    adapter = TWILIO_ROUTES.bind(parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme)

    def build(endpoint: str, **values: object) -> str:
        return adapter.build(endpoint, values, force_external=True)

    return build
