"""Fault injection: the failures Twilio shows under load or trouble, on demand and counted."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

CORRUPTIONS = ("truncated", "empty", "garbage")
REFUSAL_STATUSES = {429: 20429, 500: 20500, 503: 20503}


@dataclass(frozen=True)
class Refusal:
    """How a refused REST request is answered."""

    status: int
    code: int


@dataclass(frozen=True)
class Undelivery:
    """How a message ends instead of `delivered`."""

    status: str
    error_code: int


class Faults:
    """Counters of failures still to inject; each injection uses one up."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._refusals: list[Refusal] = []
        self._corruptions: list[str] = []
        self._undeliveries: list[Undelivery] = []
        self._delays: dict[str, list[float]] = {"Calls": [], "Messages": []}
        self._unreachable: dict[str, int] = {}

    def refuse_messages(self, count: int = 1, status: int = 503) -> None:
        """Make the next `count` Messages POSTs fail with 429, 500 or 503 and Twilio's error body."""
        if status not in REFUSAL_STATUSES:
            raise ValueError(f"status must be one of {sorted(REFUSAL_STATUSES)}")
        with self._lock:
            self._refusals.extend([Refusal(status, REFUSAL_STATUSES[status])] * count)

    def corrupt_recording_media(self, count: int = 1, kind: str = "truncated") -> None:
        """Store broken media for the next `count` recordings made."""
        if kind not in CORRUPTIONS:
            raise ValueError(f"kind must be one of {CORRUPTIONS}")
        with self._lock:
            self._corruptions.extend([kind] * count)

    def undeliver_messages(self, count: int = 1, status: str = "undelivered", error_code: int = 30003) -> None:
        """Make the next `count` messages end `undelivered` or `failed` with a carrier error code."""
        if status not in ("undelivered", "failed"):
            raise ValueError("status must be 'undelivered' or 'failed'")
        with self._lock:
            self._undeliveries.extend([Undelivery(status, error_code)] * count)

    def delay(self, resource: str, seconds: float, count: int = 1) -> None:
        """Make the next `count` POSTs creating Calls or Messages take `seconds` before Twilio answers."""
        with self._lock:
            self._delays[resource].extend([seconds] * count)

    def unreachable(self, path: str, count: int = 1) -> None:
        """The app cannot be reached for the next `count` webhooks to URLs whose path ends with `path`.

        As when the app is down or redeploying: Twilio's tries all fail, it logs error 11205 and moves on.
        """
        with self._lock:
            self._unreachable[path] = self._unreachable.get(path, 0) + count

    def take_unreachable(self, path: str) -> bool:
        with self._lock:
            for suffix, left in self._unreachable.items():
                if left and path.endswith(suffix):
                    self._unreachable[suffix] = left - 1
                    return True
            return False

    def delays_left(self, resource: str) -> int:
        """Delayed requests still to come: 0 once the client is inside the last one, waiting for Twilio's answer."""
        with self._lock:
            return len(self._delays[resource])

    def take_delay(self, resource: str) -> float:
        with self._lock:
            pending = self._delays[resource]
            return pending.pop(0) if pending else 0.0

    def take_refusal(self) -> Refusal | None:
        with self._lock:
            return self._refusals.pop(0) if self._refusals else None

    def take_undelivery(self) -> Undelivery | None:
        with self._lock:
            return self._undeliveries.pop(0) if self._undeliveries else None

    def corrupt(self, media: bytes) -> bytes:
        """Apply the next pending corruption, if any, to freshly made media."""
        with self._lock:
            if not self._corruptions:
                return media
            kind = self._corruptions.pop(0)
            if kind == "empty":
                return b""
            if kind == "truncated":
                return media[: max(1, len(media) // 3)]
            return self._rng.randbytes(len(media))
