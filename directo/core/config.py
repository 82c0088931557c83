"""Configuration read once from the environment (12-factor), with explicit conversions."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from directo.core.db import MAX_OVERFLOW, POOL_SIZE
from directo.core.hours import BusinessHours
from directo.core.languages import SUPPORTED_LANGUAGES
from directo.core.private_files import private_directory

RECORDING_FORMATS = ("mp3", "wav")


def _data_dir(env: dict[str, str]) -> Path:
    return Path(env.get("DIRECTO_DATA_DIR", "var")).resolve()


def _local_secret(data_dir: Path, name: str) -> str:
    """A secret generated once per installation, so a laptop run needs no setup yet is never guessable.

    Processes that start together (web workers and a worker) must agree on it, or a session signed by one would
    be refused by the next: the secret is written whole to a private temporary file and published with a hard
    link, which only the first process manages; every process then reads the one that won.
    """
    path = data_dir / name
    if not path.exists():
        private_directory(data_dir)
        descriptor, temporary = tempfile.mkstemp(dir=data_dir, prefix=f".{name}.")  # readable by its owner only
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(16))
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    return path.read_text().strip()


def redacted(url: str) -> str:
    """A connection URL fit to print or log: any password (in the user part or as ?password=) becomes ***."""
    parts = urlsplit(url)
    user, at, host = parts.netloc.rpartition("@")
    if at and ":" in user:
        url = url.replace(parts.netloc, f"{user.split(':', 1)[0]}:***@{host}", 1)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(key.lower() == "password" for key, _ in pairs):
        query = urlencode([(key, "***" if key.lower() == "password" else value) for key, value in pairs], safe="*/")
        url = url.replace("?" + parts.query, "?" + query, 1)
    return url


@dataclass(frozen=True)
class Config:
    twilio_account_sid: str = "AC" + "0" * 32
    twilio_auth_token: str = ""
    twilio_api_key: str = ""
    twilio_api_secret: str = ""
    twilio_twiml_app_sid: str = ""
    twilio_caller_id: str = ""
    # Where the twilio client sends REST calls; only changed to reach the local stand-in.
    twilio_api_base_url: str = ""
    public_base_url: str = ""
    redis_url: str = ""
    database_url: str = ""
    # A direct connection to PostgreSQL for what needs a session of its own (migrations), when DATABASE_URL goes
    # through a pooler in transaction mode (PgBouncer); unset, DATABASE_URL is direct and used for everything.
    database_direct_url: str = ""
    # Connections each process keeps open (and may add under load), through the pooler when there is one.
    database_pool_size: int = POOL_SIZE
    database_max_overflow: int = MAX_OVERFLOW
    recordings_dir: str = ""
    secret_key: str = ""
    data_dir: str = "var"
    default_language: str = "es"
    default_region: str = "ES"
    wrapup_seconds: int = 30
    # After a callback attempt whose customer was not reached: a moment of the agent's own before the next call.
    callback_attempt_wrapup_seconds: int = 5
    ring_timeout_seconds: int = 20
    max_dial_attempts: int = 3
    callback_promise_minutes: int = 15
    # For this long after queueing, only the caller's previous agent may take their callback.
    callback_preferred_minutes: int = 5
    callback_max_attempts: int = 3
    callback_retry_minutes: int = 3
    sweep_seconds: int = 10
    # Exactly-once receipts only matter while Twilio may still redeliver (seconds); kept a week for inquiries.
    webhook_receipt_days: int = 7
    # Spain's customer-service bill: a complaint is answered within 15 calendar days (down from 30).
    complaint_resolution_days: int = 15
    # The follow-up call that asks whether the remedy worked comes this long after the customer was told.
    complaint_followup_days: int = 7
    # For this long after a complaint's call falls due only its owner may make it; then anyone speaking the language.
    complaint_owner_minutes: int = 60
    recording_format: str = "mp3"
    recording_sample_rate: int = 8000
    fallback_number: str = ""
    # How many reverse proxies in front set X-Forwarded-For/-Proto/-Host; 0 trusts none of these headers.
    trusted_proxies: int = 0
    # A session unused for this long (a working day) ends; every request renews it.
    session_idle_hours: float = 8.0
    # Failed logins allowed before the agent page answers 429 (limits' notation, e.g. "5 per 5 minutes").
    login_failures_per_identity: str = "5 per 5 minutes"
    login_failures_per_address: str = "30 per 5 minutes"
    # Live pages (agent page, board) one person may have open at once; opening one more closes their oldest.
    streams_per_person: int = 3
    # The center's clock: promised calls are dated, texted and checked against opening hours in this zone.
    time_zone: str = "Europe/Madrid"
    business_hours: str = "Mon-Fri 09:00-19:00"
    # How long only the agent who promised a call may keep it once it is due; then anyone who speaks the language.
    promise_grace_minutes: int = 10
    # How long after its time a promised call still counts as kept on time (tries to reach the customer go on).
    promise_window_minutes: int = 30

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Config:
        env = dict(os.environ if env is None else env)
        data_dir = _data_dir(env)
        config = cls(
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID", cls.twilio_account_sid),
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or _local_secret(data_dir, "twilio_auth_token"),
            twilio_api_key=env.get("TWILIO_API_KEY", ""),
            twilio_api_secret=env.get("TWILIO_API_SECRET", ""),
            twilio_twiml_app_sid=env.get("TWILIO_TWIML_APP_SID", ""),
            twilio_caller_id=env.get("TWILIO_CALLER_ID", ""),
            twilio_api_base_url=env.get("TWILIO_API_BASE_URL", ""),
            public_base_url=env.get("PUBLIC_BASE_URL", "").rstrip("/"),
            redis_url=env.get("REDIS_URL", ""),
            database_url=env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'directo.db'}",
            database_direct_url=env.get("DATABASE_DIRECT_URL", ""),
            database_pool_size=int(env.get("DATABASE_POOL_SIZE", cls.database_pool_size)),
            database_max_overflow=int(env.get("DATABASE_MAX_OVERFLOW", cls.database_max_overflow)),
            recordings_dir=env.get("RECORDINGS_DIR") or str(data_dir / "recordings"),
            secret_key=env.get("SECRET_KEY") or _local_secret(data_dir, "secret_key"),
            data_dir=str(data_dir),
            default_language=env.get("DEFAULT_LANGUAGE", cls.default_language),
            default_region=env.get("DEFAULT_REGION", cls.default_region),
            wrapup_seconds=int(env.get("WRAPUP_SECONDS", cls.wrapup_seconds)),
            callback_attempt_wrapup_seconds=int(env.get("CALLBACK_ATTEMPT_WRAPUP_SECONDS",
                                                        cls.callback_attempt_wrapup_seconds)),
            ring_timeout_seconds=int(env.get("RING_TIMEOUT_SECONDS", cls.ring_timeout_seconds)),
            max_dial_attempts=int(env.get("MAX_DIAL_ATTEMPTS", cls.max_dial_attempts)),
            callback_promise_minutes=int(env.get("CALLBACK_PROMISE_MINUTES", cls.callback_promise_minutes)),
            callback_preferred_minutes=int(env.get("CALLBACK_PREFERRED_MINUTES", cls.callback_preferred_minutes)),
            callback_max_attempts=int(env.get("CALLBACK_MAX_ATTEMPTS", cls.callback_max_attempts)),
            callback_retry_minutes=int(env.get("CALLBACK_RETRY_MINUTES", cls.callback_retry_minutes)),
            sweep_seconds=int(env.get("SWEEP_SECONDS", cls.sweep_seconds)),
            webhook_receipt_days=int(env.get("WEBHOOK_RECEIPT_DAYS", cls.webhook_receipt_days)),
            complaint_resolution_days=int(env.get("COMPLAINT_RESOLUTION_DAYS", cls.complaint_resolution_days)),
            complaint_followup_days=int(env.get("COMPLAINT_FOLLOWUP_DAYS", cls.complaint_followup_days)),
            complaint_owner_minutes=int(env.get("COMPLAINT_OWNER_MINUTES", cls.complaint_owner_minutes)),
            recording_format=env.get("RECORDING_FORMAT", cls.recording_format).lower(),
            recording_sample_rate=int(env.get("RECORDING_SAMPLE_RATE", cls.recording_sample_rate)),
            fallback_number=env.get("FALLBACK_NUMBER", ""),
            trusted_proxies=int(env.get("TRUSTED_PROXIES", cls.trusted_proxies)),
            session_idle_hours=float(env.get("SESSION_IDLE_HOURS", cls.session_idle_hours)),
            login_failures_per_identity=env.get("LOGIN_FAILURES_PER_IDENTITY", cls.login_failures_per_identity),
            login_failures_per_address=env.get("LOGIN_FAILURES_PER_ADDRESS", cls.login_failures_per_address),
            streams_per_person=int(env.get("STREAMS_PER_PERSON", cls.streams_per_person)),
            time_zone=env.get("TIME_ZONE", cls.time_zone),
            business_hours=env.get("BUSINESS_HOURS", cls.business_hours),
            promise_grace_minutes=int(env.get("PROMISE_GRACE_MINUTES", cls.promise_grace_minutes)),
            promise_window_minutes=int(env.get("PROMISE_WINDOW_MINUTES", cls.promise_window_minutes)),
        )
        if config.recording_format not in RECORDING_FORMATS:
            raise ValueError(f"RECORDING_FORMAT={config.recording_format!r}: use {' or '.join(RECORDING_FORMATS)}")
        if config.default_language not in SUPPORTED_LANGUAGES:
            raise ValueError(
                f"DEFAULT_LANGUAGE={config.default_language!r}: supported are {', '.join(SUPPORTED_LANGUAGES)}"
            )
        for name in ("complaint_resolution_days", "complaint_followup_days"):
            if getattr(config, name) < 1:
                raise ValueError(f"{name.upper()}={getattr(config, name)}: give a whole number of days, 1 or more")
        if config.streams_per_person < 1:
            raise ValueError(f"STREAMS_PER_PERSON={config.streams_per_person}: a person needs at least 1 live page")
        config = replace(config, **overrides)
        BusinessHours.parse(config.business_hours, config.time_zone)  # unreadable hours stop the start, not a promise
        return config

    @property
    def hours(self) -> BusinessHours:
        """When promised calls may fall, on the center's clock."""
        return BusinessHours.parse(self.business_hours, self.time_zone)

    @property
    def database_url_sqlalchemy(self) -> str:
        return _sqlalchemy_url(self.database_url)

    @property
    def database_direct_url_sqlalchemy(self) -> str:
        """The direct connection's URL, DATABASE_URL itself when none is set."""
        return _sqlalchemy_url(self.database_direct_url or self.database_url)


def _sqlalchemy_url(url: str) -> str:
    """Plain postgres:// URLs (as Heroku-style hosts give them) select the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
