"""The resources the stand-in keeps: call legs, recordings, messages, and the events a test inspects."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .audio import Segment
from .behaviours import Behaviour

if TYPE_CHECKING:
    from .clock import Actor

FINAL_STATUSES = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
CALL_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})
RECORDING_EVENTS = frozenset({"in-progress", "completed", "absent"})


def seconds(value: float) -> int:
    """Twilio reports durations as whole seconds, rounded half up."""
    return int(value + 0.5)


@dataclass(frozen=True)
class Callback:
    """Where and on which events Twilio reports progress."""

    url: str
    method: str = "POST"
    events: frozenset[str] = frozenset({"completed"})


@dataclass
class Event:
    """One thing that happened, at a virtual time; `detail` holds its data (webhook params, statuses...)."""

    seq: int
    at: float
    kind: str
    sid: str | None
    detail: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.detail[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.detail.get(key, default)


class EventLog:
    """Events of one call tree or message, in order, filterable."""

    def __init__(self) -> None:
        self.items: list[Event] = []

    def find(self, kind: str | None = None, **match: Any) -> list[Event]:
        """Events of `kind` whose detail has every key=value in `match` (`sid` matches the leg)."""
        return [
            event
            for event in list(self.items)
            if (kind is None or event.kind == kind)
            and all((event.sid if key == "sid" else event.detail.get(key)) == value for key, value in match.items())
        ]

    def webhooks(self, purpose: str | None = None) -> list[Event]:
        """Requests made to the app, optionally of one purpose (voice, action, status_callback...)."""
        return [e for e in self.find("webhook") if purpose is None or e.detail["purpose"] == purpose]


class Call:
    """One call leg as Twilio's Call resource shows it, plus what happened on it."""

    def __init__(
        self,
        sid: str,
        *,
        account_sid: str,
        direction: str,
        from_: str,
        to: str,
        status: str,
        created_at: float,
        behaviour: Behaviour,
        parent: Call | None = None,
        status_callback: Callback | None = None,
        forwarded_from: str | None = None,
        caller_name: str | None = None,
    ) -> None:
        self.sid = sid
        self.account_sid = account_sid
        self.direction = direction
        self.from_ = from_
        self.to = to
        self.status = status
        self.parent = parent
        self.root: Call = parent.root if parent else self
        self.children: list[Call] = []
        self.behaviour = behaviour
        self.status_callback = status_callback
        self.forwarded_from = forwarded_from
        self.caller_name = caller_name
        self.created_at = created_at
        self.updated_at = created_at
        self.started_at: float | None = None
        self.answered_at: float | None = None
        self.ended_at: float | None = None
        self.hung_up_by: str | None = None
        self.custom_parameters: dict[str, str] = {}
        self.errors: list[dict[str, Any]] = []
        self.twiml_errors: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.recordings: list[Recording] = []
        self.segments: list[Segment] = []
        self.actor: Actor | None = None
        self.sequence = 0
        self.digits: deque[str] = deque(behaviour.digits)
        self.speech: deque[str] = deque(behaviour.speech)
        if parent is None:
            self.log = EventLog()
            self.outstanding = 0
            self.done = threading.Event()

    def __repr__(self) -> str:
        return f"<Call {self.sid} {self.direction} {self.from_}->{self.to} {self.status}>"

    @property
    def ended(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def duration(self) -> int | None:
        """Seconds from answer to hang-up; None until an answered call ends."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return seconds(self.ended_at - self.answered_at)

    @property
    def legs(self) -> list[Call]:
        """This leg and every leg dialled from it, depth first."""
        return [self, *(leg for child in self.children for leg in child.legs)]

    @property
    def events(self) -> list[Event]:
        """Everything that happened on the whole call (all legs), in order."""
        return list(self.root.log.items)

    def find(self, kind: str | None = None, **match: Any) -> list[Event]:
        return self.root.log.find(kind, **match)

    def webhooks(self, purpose: str | None = None) -> list[Event]:
        return self.root.log.webhooks(purpose)

    def wait(self, timeout: float = 10.0) -> Call:
        """Block (real seconds) until every leg has ended and every callback about them has been answered."""
        if not self.root.done.wait(timeout):
            live = [leg for leg in self.root.legs if not leg.ended]
            raise TimeoutError(f"call {self.root.sid} not finished after {timeout}s; live legs: {live}")
        return self


@dataclass
class Recording:
    """A recording of a call (<Record>, <Dial record>, Record=true or the Recordings API)."""

    sid: str
    account_sid: str
    call_sid: str
    source: str
    channels: int
    track: str
    started_at: float
    callback: Callback | None
    status: str = "in-progress"
    ended_at: float | None = None
    duration: int | None = None
    media: bytes | None = None
    error_code: int | None = None
    updated_at: float = 0.0
    deleted: bool = False
    mp3: bytes | None = field(default=None, repr=False)


@dataclass
class Message:
    """An outbound SMS and its status history."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    callback: Callback | None
    created_at: float
    status: str = "queued"
    updated_at: float = 0.0
    sent_at: float | None = None
    error_code: int | None = None
    error_message: str | None = None
    num_media: int = 0
    history: list[tuple[float, str]] = field(default_factory=list)
    log: EventLog = field(default_factory=EventLog)

    @property
    def statuses(self) -> list[str]:
        return [status for _, status in self.history]
