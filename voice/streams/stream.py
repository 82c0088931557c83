"""One open page's stream: the frames queued for it, and what it was sent of each kind (so never twice)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import NamedTuple

from voice.streams import sse

# Frames waiting for one slow page; past this it is told to reconnect, and resumes from its log.
QUEUE_FRAMES = 256

RECONNECT = sse.frame({"after_ms": 0}, event="reconnect")
# The server is stopping: pages come back a moment later, spread out, to whichever process is up.
RESTART = sse.frame({"after_ms": 3000}, event="reconnect")
SUPERSEDED = sse.frame({}, event="superseded")


class Out(NamedTuple):
    """A frame on its way: events, states and snapshots carry their order, so a page never gets one twice or
    one older than it has (frames queue from the moment a stream opens, while its first frames are read)."""

    kind: str  # "event" (order: its log entry), "state" (Redis's clock), "board" (snapshot number), or "plain"
    order: tuple[int, int]
    data: bytes


# Kinds that are never sent twice; a state may be (the same state, read and pushed), but never an older one.
_ONCE = ("event", "board")


@dataclass(eq=False)
class Stream:
    """One open page: what it has been sent, and the frames queued for it."""

    person: str
    seat: str
    board: bool
    ends_at: float
    queue: asyncio.Queue[Out | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_FRAMES))
    sent: dict[str, tuple[int, int]] = field(default_factory=dict)  # the newest of each kind it was sent
    final: bytes = b""
    ended: bool = False

    def push(self, out: Out) -> None:
        if self.ended:
            return
        try:
            self.queue.put_nowait(out)
        except asyncio.QueueFull:
            self.end(RECONNECT)

    def end(self, final: bytes) -> None:
        """Close after `final`; whatever is still queued is dropped (the page resumes from its log)."""
        if self.ended:
            return
        self.ended, self.final = True, final
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)

    def fresh(self, out: Out) -> bool:
        """Whether `out` is newer than what this page was sent of its kind, noting it as sent."""
        if out.kind == "plain":
            return True
        newest = self.sent.get(out.kind)
        if newest is not None and (out.order <= newest if out.kind in _ONCE else out.order < newest):
            return False
        self.sent[out.kind] = out.order
        return True


def event_order(event_id: str) -> tuple[int, int]:
    """A log entry id (`<ms>-<seq>`) as something to compare; anything else sorts first."""
    ms, _, seq = event_id.partition("-")
    return (int(ms), int(seq or 0)) if ms.isdigit() and (seq or "0").isdigit() else (0, 0)
