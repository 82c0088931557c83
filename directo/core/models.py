"""The system of record: everything that must survive a Redis restart lives in these tables."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column, relationship, validates

from directo.core.states import (
    AgentStatus,
    CallbackKind,
    CallbackState,
    CallOutcome,
    ComplaintState,
    Direction,
    RecordingState,
    Role,
    SmsState,
    SmsTopic,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC and returns aware UTC, so SQLite and PostgreSQL compare the same way."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given: Directo stores UTC only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


FROM_RAW_LENGTH = 255


class Base(DeclarativeBase):
    pass


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(primary_key=True)
    identity: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Comma-separated language codes; kept as text so both databases index and compare it alike.
    languages_csv: Mapped[str] = mapped_column("languages", String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16), default=Role.AGENT)
    password_hash: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The presence the agent asked for; Redis holds the live state and is rebuilt from this after a loss.
    status: Mapped[str] = mapped_column(String(16), default=AgentStatus.OFFLINE)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Each session carries the version it was opened under; raising it ends every session of this person.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    @property
    def languages(self) -> list[str]:
        return [code for code in self.languages_csv.split(",") if code]

    @languages.setter
    def languages(self, codes: list[str]) -> None:
        self.languages_csv = ",".join(dict.fromkeys(code.strip().lower() for code in codes if code.strip()))


# A change to any of these ends every session the person has open, whichever command or page made it.
SESSION_ENDING_CHANGES = ("password_hash", "role", "active")


@event.listens_for(Agent, "before_update")
def _end_sessions(_mapper: Mapper[Agent], _connection: Any, agent: Agent) -> None:
    """Raised in the same UPDATE as the change, so no session opened before it can outlive it."""
    changes = inspect(agent).attrs
    if any(changes[name].history.has_changes() for name in SESSION_ENDING_CHANGES):
        agent.session_version = Agent.session_version + 1  # type: ignore[assignment]


def name_key(name: str | None) -> str | None:
    """How a name is searched: case and accents aside (Nuñez finds Núñez), any script kept (김민준 finds itself)."""
    if not name:
        return None
    bare = "".join(c for c in unicodedata.normalize("NFD", name) if unicodedata.category(c) != "Mn")
    return " ".join(unicodedata.normalize("NFC", bare).casefold().split())


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    # E.164; a token instead once the customer asked to be forgotten.
    phone: Mapped[str] = mapped_column(String(32), unique=True)
    # Exactly as the customer gives it, in any script; changed only through routing/customers.py.
    name: Mapped[str | None] = mapped_column(String(200))
    name_key: Mapped[str | None] = mapped_column(String(200), index=True)
    # How to say the name ("Swah-reth"), for the agent and the voice that whispers it.
    say_as: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(8))
    # What every agent should know before saying hello: their situation, what they asked us not to do.
    notes: Mapped[str | None] = mapped_column(Text)
    # Bumped by every change to the profile, so two agents editing at once cannot overwrite each other unseen.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    forgotten_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    # Kept as a counter so the screen pop needs no count(*) over the call log on every ring.
    answered_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    last_agent: Mapped[Agent | None] = relationship()

    @validates("name")
    def _keyed(self, _key: str, name: str | None) -> str | None:
        self.name_key = name_key(name)
        return name


class CustomerChange(Base):
    """One change to a customer's profile: who made it, when, what it was and what it became."""

    __tablename__ = "customer_changes"
    __table_args__ = (Index("ix_customer_changes_customer", "customer_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    by: Mapped[str] = mapped_column(String(64))
    # One of routing.customers.FIELDS, or "forgotten".
    field: Mapped[str] = mapped_column(String(16))
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_started", "started_at", "id"),
        # Each filter of the supervisors' call log followed by its sort key: one index range scan per page.
        Index("ix_calls_agent_started_id", "agent_id", "started_at", "id"),
        Index("ix_calls_caller_started_id", "caller", "started_at", "id"),
        Index("ix_calls_outcome_started_id", "outcome", "started_at", "id"),
        Index("ix_calls_customer", "customer_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(16), default=Direction.INBOUND)
    # What Twilio sent in From, for the record: a SIP address can be long; longer ones are kept shortened.
    from_raw: Mapped[str | None] = mapped_column(String(FROM_RAW_LENGTH))
    caller: Mapped[str | None] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    language: Mapped[str] = mapped_column(String(8))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    previous_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    dial_attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # One of states.CallOutcome.
    outcome: Mapped[str] = mapped_column(String(24), default=CallOutcome.ROUTING)
    callback_id: Mapped[int | None] = mapped_column(ForeignKey("callbacks.id", use_alter=True))
    notes: Mapped[str | None] = mapped_column(Text)

    customer: Mapped[Customer | None] = relationship()
    agent: Mapped[Agent | None] = relationship(foreign_keys=[agent_id])
    previous_agent: Mapped[Agent | None] = relationship(foreign_keys=[previous_agent_id])
    events: Mapped[list[CallEvent]] = relationship(back_populates="call", order_by="CallEvent.id")

    @property
    def routed_to_previous(self) -> bool:
        return self.agent_id is not None and self.agent_id == self.previous_agent_id

    @property
    def wait_seconds(self) -> float | None:
        """How long the caller waited for a person: from the webhook to the agent's answer."""
        if self.answered_at is None:
            return None
        return round((self.answered_at - self.started_at).total_seconds(), 3)


class CallNote(Base):
    """Every version of a call's notes, with who wrote it and when; `Call.notes` is the latest."""

    __tablename__ = "call_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    notes: Mapped[str] = mapped_column(Text)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    agent: Mapped[Agent | None] = relationship()


class CallEvent(Base):
    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    call: Mapped[Call] = relationship(back_populates="events")


class WebhookReceipt(Base):
    """One row per (CallSid, event) Twilio delivered: a redelivery replays the stored answer."""

    __tablename__ = "webhook_receipts"
    __table_args__ = (UniqueConstraint("call_sid", "event"), Index("ix_webhook_receipts_received", "received_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(120))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    response: Mapped[str | None] = mapped_column(Text)


class Callback(Base):
    __tablename__ = "callbacks"
    __table_args__ = (Index("ix_callbacks_state_queued", "state", "queued_at"),
                      # What we owe a customer, and what was promised on a call: the screen pop's memory.
                      Index("ix_callbacks_customer_state", "customer_id", "state"),
                      Index("ix_callbacks_origin_call", "origin_call_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    phone: Mapped[str] = mapped_column(String(32), index=True)
    language: Mapped[str] = mapped_column(String(8))
    origin_call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    preferred_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    # One of states.CallbackKind: why we owe the customer this call.
    kind: Mapped[str] = mapped_column(String(24), default=CallbackKind.CALL_BACK,
                                      server_default=CallbackKind.CALL_BACK.value)
    # One of states.CallbackState; it changes only through routing/callbacks.py.
    state: Mapped[str] = mapped_column(String(16), default=CallbackState.QUEUED)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    promised_by: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason_recording_sid: Mapped[str | None] = mapped_column(String(64))
    reason_recording_url: Mapped[str | None] = mapped_column(String(500))
    reason_recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"))
    current_call_sid: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    close_reason: Mapped[str | None] = mapped_column(String(200))
    # Until then only the preferred agent (its owner) may take it; after, anyone who speaks the language.
    exclusive_until: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What was promised, in the words of the agent who promised it: on the agent's screen and in the customer's SMS.
    about: Mapped[str | None] = mapped_column(Text)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id", use_alter=True))
    # Who made the promise (an agent's identity), for dated callbacks.
    created_by: Mapped[str | None] = mapped_column(String(64))

    customer: Mapped[Customer | None] = relationship()
    agent: Mapped[Agent | None] = relationship(foreign_keys=[agent_id])
    preferred_agent: Mapped[Agent | None] = relationship(foreign_keys=[preferred_agent_id])


class ComplaintCounter(Base):
    """Gap-free complaint numbering per year: a row lock on the year's counter serialises issuers."""

    __tablename__ = "complaint_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Complaint(Base):
    __tablename__ = "complaints"
    __table_args__ = (
        # The caller's open complaints while the phone rings; the register by state and due date.
        Index("ix_complaints_customer_state", "customer_id", "state"),
        Index("ix_complaints_state_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), unique=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    # The agent on the call it was flagged on; the owner (who answers for it) starts as them.
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    phone: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(8))
    summary: Mapped[str] = mapped_column(Text)
    flagged_by: Mapped[str] = mapped_column(String(64))
    flagged_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    spoken_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"))
    # One of states.ComplaintState; it changes only through recordings/complaints.py.
    state: Mapped[str] = mapped_column(String(16), default=ComplaintState.RECEIVED,
                                       server_default=ComplaintState.RECEIVED.value)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    # When the customer must have been told the resolution: flagged (or reopened) + COMPLAINT_RESOLUTION_DAYS.
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The legal deadline of the first answer and when it was given: what the compliance report measures.
    first_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_told_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The resolution: what went wrong and the remedy, in words for the customer; the cause, in words for the team.
    explanation: Mapped[str | None] = mapped_column(Text)
    remedy: Mapped[str | None] = mapped_column(Text)
    cause: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    told_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    told_by: Mapped[str | None] = mapped_column(String(64))
    # One of states.ToldVia.
    told_via: Mapped[str | None] = mapped_column(String(8))
    # Whether the customer accepted the remedy when told, in their words (unknown until the agent records it).
    remedy_accepted: Mapped[bool | None] = mapped_column(Boolean)
    answer_note: Mapped[str | None] = mapped_column(Text)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verified_by: Mapped[str | None] = mapped_column(String(64))
    satisfied: Mapped[bool | None] = mapped_column(Boolean)
    verdict_note: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    call: Mapped[Call] = relationship()
    customer: Mapped[Customer | None] = relationship()
    agent: Mapped[Agent | None] = relationship(foreign_keys=[agent_id])
    owner: Mapped[Agent | None] = relationship(foreign_keys=[owner_id])
    recording: Mapped[Recording | None] = relationship()
    messages: Mapped[list[SmsMessage]] = relationship(back_populates="complaint", order_by="SmsMessage.id")

    @property
    def reference_texts(self) -> list[SmsMessage]:
        """The texts that carried the reference: the proof the customer keeps, oldest first."""
        return [m for m in self.messages if m.topic == SmsTopic.COMPLAINT_REFERENCE]


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    twilio_sid: Mapped[str] = mapped_column(String(64), unique=True)
    call_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    source_url: Mapped[str] = mapped_column(String(500))
    # One of states.RecordingState.
    state: Mapped[str] = mapped_column(String(16), default=RecordingState.PENDING)
    sha256: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(String(500))
    format: Mapped[str | None] = mapped_column(String(8))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    stored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SmsMessage(Base):
    """One text sent to a customer; a notice (topic, subject) is re-sent as new rows until one is delivered."""

    __tablename__ = "sms_messages"
    __table_args__ = (Index("ix_sms_messages_notice", "topic", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # One of states.SmsTopic, and the complaint or callback it is about.
    topic: Mapped[str] = mapped_column(String(24), default=SmsTopic.COMPLAINT_REFERENCE,
                                       server_default=SmsTopic.COMPLAINT_REFERENCE.value)
    subject_id: Mapped[int] = mapped_column(Integer)
    # Texts about a complaint are in its audit trail.
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"), index=True)
    message_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    to: Mapped[str] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    # One of states.SmsState.
    state: Mapped[str] = mapped_column(String(16), default=SmsState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    complaint: Mapped[Complaint | None] = relationship(back_populates="messages")


class AuditEntry(Base):
    """Append-only, hash-chained: each row's hash covers its content and the previous row's hash."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"), index=True)
    event: Mapped[str] = mapped_column(String(40))
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
