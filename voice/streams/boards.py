"""What a web process's open live boards are sent: each agent's changes, gathered for a tick, and one snapshot
for all of them every SNAPSHOT_SECONDS (today's figures, the costly part, every FIGURES_SECONDS)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from directo.core.services import Services
from voice.streams import sse
from voice.streams.stream import Out, Stream

logger = logging.getLogger(__name__)

SNAPSHOT_SECONDS = 10.0
FIGURES_SECONDS = 30.0


@dataclass(frozen=True)
class BoardSource:
    """What a live board shows (voice.supervisor.board): who is on what, and today's figures."""

    rows: Callable[[Services], dict[str, Any]]
    figures: Callable[[Services], dict[str, Any]]


class Boards:
    """This process's open boards, the changes gathered for them, and the one snapshot they all share."""

    def __init__(self, svc: Services, executor: Executor, source: BoardSource) -> None:
        self.svc = svc
        self.executor = executor
        self.source = source
        self.streams: set[Stream] = set()
        self.changes: dict[str, dict[str, Any]] = {}  # for the next flush
        self.since_snapshot: dict[str, dict[str, Any]] = {}  # for a board that opens before the next snapshot
        self.snapshot: Out | None = None
        self.snapshot_at = 0.0
        self._board: dict[str, Any] | None = None
        self._figures: dict[str, Any] | None = None
        self._figures_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def opening(self, stream: Stream) -> bytes:
        """The latest snapshot, and the changes heard since it was taken (each row carries its version)."""
        snapshot = await self._latest()
        stream.fresh(snapshot)
        return snapshot.data + (sse.frame(list(self.since_snapshot.values()), event="agents")
                                if self.since_snapshot else b"")

    def change(self, person: str, fields: dict[str, Any]) -> None:
        """Gather an agent's change; a new call forgets whom the last one was with, unless this change says."""
        if self.snapshot is None:
            return  # no board was ever opened here
        for gathered in (self.changes, self.since_snapshot):
            change = gathered.setdefault(person, {"identity": person})
            if "with" not in fields and fields.get("call", change.get("call")) != change.get("call"):
                change.pop("with", None)
            change.update(fields)

    def tick(self, now: float) -> None:
        """Send the gathered changes; start a snapshot when one is due."""
        if self.changes:
            frame = Out("plain", (0, 0), sse.frame(list(self.changes.values()), event="agents"))
            self.changes = {}
            for board in self.streams:
                board.push(frame)
        if self.streams and now - self.snapshot_at >= SNAPSHOT_SECONDS and not self._lock.locked():
            self._task = asyncio.create_task(self._refresh())

    def _read(self) -> dict[str, Any]:
        """Off the event loop, one snapshot at a time: the rows afresh, the figures when they are due."""
        if self._figures is None or time.monotonic() - self._figures_at >= FIGURES_SECONDS:
            self._figures, self._figures_at = self.source.figures(self.svc), time.monotonic()
        return {**self.source.rows(self.svc), "figures": self._figures}

    async def _latest(self) -> Out:
        if self.snapshot is None or time.monotonic() - self.snapshot_at >= SNAPSHOT_SECONDS:
            await self._refresh()
        assert self.snapshot is not None
        return self.snapshot

    async def _refresh(self) -> None:
        """One snapshot for every board of this process, computed off the event loop, pushed when it changed."""
        asked = time.monotonic()
        async with self._lock:
            if self.snapshot is not None and self.snapshot_at >= asked:
                return  # computed while we waited
            loop = asyncio.get_running_loop()
            self.snapshot_at = time.monotonic()  # a failing database is asked again next period, not every tick
            self.since_snapshot = {}
            try:
                board = await loop.run_in_executor(self.executor, self._read)
            except Exception:
                logger.exception("live board snapshot failed")
                if self.snapshot is None:
                    raise
                return
            number = self.snapshot.order[0] + 1 if self.snapshot else 1
            self.snapshot = Out("board", (number, 0), sse.frame({**board, "server_time": time.time()}, event="board"))
            if board != self._board:
                self._board = board
                for stream in self.streams:
                    stream.push(self.snapshot)
