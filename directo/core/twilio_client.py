"""The real twilio REST client, pointed at Twilio or (by TWILIO_API_BASE_URL) at a local stand-in."""

from __future__ import annotations

from twilio.rest import Client

from directo.core.config import Config


def twilio_client(config: Config) -> Client:
    """One client per caller: twilio's Client is cheap to build and not documented as thread-safe."""
    client = Client(config.twilio_account_sid, config.twilio_auth_token or None)
    if config.twilio_api_base_url:
        client.api.base_url = config.twilio_api_base_url.rstrip("/")
    return client
