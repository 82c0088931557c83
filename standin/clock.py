"""Virtual time: a scheduler where one simulated party runs at a time, so runs are reproducible."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

log = logging.getLogger(__name__)


class SimulationClosed(Exception):
    """Raised inside simulated parties when the stand-in shuts down, to unwind their threads."""


class Actor:
    """A simulated party: its own thread and inbox; it only runs while it holds the scheduler's baton."""

    def __init__(self, scheduler: Scheduler, name: str) -> None:
        self.name = name
        self.finished = False
        self._scheduler = scheduler
        self._inbox: deque[object] = deque()
        self._waiting = False
        self._generation = 0

    def post(self, message: object) -> None:
        """Deliver a message; safe from any thread."""
        self._scheduler._post(self, message)

    def receive(self, timeout: float | None) -> object | None:
        """Wait up to `timeout` virtual seconds (None: forever) for a message; None on timeout."""
        return self._scheduler._receive(self, timeout)

    def poll(self) -> object | None:
        """Take a pending message without waiting."""
        return self._scheduler._poll(self)


@dataclass(frozen=True)
class _Wake:
    actor: Actor
    generation: int


@dataclass(frozen=True)
class _Task:
    fn: Callable[[], None]


_TASK_HOLDER = object()


class Scheduler:
    """Runs actors one at a time and advances virtual time only when all of them wait.

    While nobody runs, virtual time flows at 1/time_scale of real time, so things that happen outside
    the simulation (REST requests from the app, a test hanging up) land at a sensible virtual instant.
    """

    def __init__(self, time_scale: float, epoch: datetime | None = None) -> None:
        if time_scale < 0:
            raise ValueError("time_scale must be >= 0")
        self.time_scale = time_scale
        self.epoch = epoch or datetime.now(UTC).replace(microsecond=0)
        self._cond = threading.Condition()
        self._now = 0.0
        self._holder: object | None = None
        self._ready: deque[Actor] = deque()
        self._timers: list[tuple[float, int, _Wake | _Task]] = []
        self._seq = itertools.count()
        self._anchor: tuple[float, float] | None = (time.monotonic(), 0.0)
        self._live = 0
        self._closed = False
        self._threads: list[threading.Thread] = []
        self._clock = threading.Thread(target=self._run_clock, name="standin-clock", daemon=True)
        self._clock.start()

    # -- time -------------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Current virtual time in seconds since the stand-in started."""
        with self._cond:
            return self._current()

    def datetime_at(self, at: float) -> datetime:
        """Wall-clock instant of a virtual time."""
        return self.epoch + timedelta(seconds=at)

    def _current(self) -> float:
        # with no party alive and nothing scheduled, nothing can tell time apart: it stands still
        if self._anchor is None or self.time_scale == 0 or (self._live == 0 and not self._timers):
            return self._now
        started_real, started_virtual = self._anchor
        flowed = started_virtual + (time.monotonic() - started_real) / self.time_scale
        return max(self._now, min(flowed, self._next_deadline()))

    def _settle(self) -> None:
        """Fix the current virtual time before a change that may start or stop it flowing."""
        self._now = self._current()
        if self._anchor is not None:
            self._anchor = (time.monotonic(), self._now)

    def _next_deadline(self) -> float:
        self._discard_stale()
        return self._timers[0][0] if self._timers else float("inf")

    def _discard_stale(self) -> None:
        while self._timers:
            entry = self._timers[0][2]
            if isinstance(entry, _Wake) and (entry.generation != entry.actor._generation or not entry.actor._waiting):
                heapq.heappop(self._timers)
                continue
            return

    # -- actors -----------------------------------------------------------------------------------
    def actor(self, name: str) -> Actor:
        """A party that can already receive messages; `start` gives it a body to run."""
        return Actor(self, name)

    def start(self, actor: Actor, body: Callable[[Actor], None]) -> None:
        """Start a simulated party; it runs when it gets the baton."""
        name = actor.name
        thread = threading.Thread(target=self._run_actor, args=(actor, body), name=f"standin-{name}", daemon=True)
        with self._cond:
            if self._closed:
                raise SimulationClosed("the stand-in is closed")
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            self._make_ready(actor)
            self._live += 1
        thread.start()

    def at(self, delay: float, fn: Callable[[], None]) -> None:
        """Run `fn` after `delay` virtual seconds, holding the baton (it must not wait for messages)."""
        with self._cond:
            self._settle()
            heapq.heappush(self._timers, (self._now + max(delay, 0.0), next(self._seq), _Task(fn)))
            self._cond.notify_all()

    def close(self, join_timeout: float = 2.0) -> None:
        """Stop the clock and unwind every actor."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + join_timeout
        for thread in [self._clock, *threads]:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run_actor(self, actor: Actor, body: Callable[[Actor], None]) -> None:
        with self._cond:
            while self._holder is not actor and not self._closed:
                self._cond.wait()
        try:
            if not self._closed:
                body(actor)
        except SimulationClosed:
            pass
        except Exception:
            log.exception("stand-in party %s crashed", actor.name)
        finally:
            with self._cond:
                self._settle()
                self._live -= 1
                actor.finished = True
                actor._inbox.clear()
                if self._holder is actor:
                    self._holder = None
                    self._dispatch()

    def _make_ready(self, actor: Actor) -> None:
        if self._holder is None and not self._ready:
            self._settle()
            self._anchor = None
        self._ready.append(actor)
        if self._holder is None:
            self._dispatch()

    def _dispatch(self) -> None:
        if self._ready:
            self._holder = self._ready.popleft()
        else:
            self._anchor = (time.monotonic(), self._now)
        self._cond.notify_all()

    def _post(self, actor: Actor, message: object) -> None:
        with self._cond:
            if actor.finished or self._closed:
                return
            actor._inbox.append(message)
            if actor._waiting:
                actor._waiting = False
                actor._generation += 1
                self._make_ready(actor)

    def _poll(self, actor: Actor) -> object | None:
        with self._cond:
            if self._closed:
                raise SimulationClosed("the stand-in is closed")
            return actor._inbox.popleft() if actor._inbox else None

    def _receive(self, actor: Actor, timeout: float | None) -> object | None:
        with self._cond:
            if self._closed:
                raise SimulationClosed("the stand-in is closed")
            if actor._inbox:
                return actor._inbox.popleft()
            actor._generation += 1
            actor._waiting = True
            if timeout is not None:
                wake = _Wake(actor, actor._generation)
                heapq.heappush(self._timers, (self._now + max(timeout, 0.0), next(self._seq), wake))
            self._holder = None
            self._dispatch()
            while self._holder is not actor and not self._closed:
                self._cond.wait()
            if self._closed:
                raise SimulationClosed("the stand-in is closed")
            actor._waiting = False
            return actor._inbox.popleft() if actor._inbox else None

    # -- the clock --------------------------------------------------------------------------------
    def _run_clock(self) -> None:
        with self._cond:
            while not self._closed:
                if self._holder is not None or self._ready:
                    self._cond.wait()
                    continue
                deadline = self._next_deadline()
                if deadline == float("inf"):
                    self._cond.wait()
                    continue
                if self.time_scale > 0 and self._anchor is not None:
                    started_real, started_virtual = self._anchor
                    remaining = started_real + (deadline - started_virtual) * self.time_scale - time.monotonic()
                    if remaining > 0:
                        self._cond.wait(remaining)
                        continue
                _, _, entry = heapq.heappop(self._timers)
                self._now = max(self._now, deadline)
                self._anchor = None
                if isinstance(entry, _Wake):
                    entry.actor._waiting = False
                    self._holder = entry.actor
                    self._cond.notify_all()
                else:
                    self._run_task(entry)

    def _run_task(self, task: _Task) -> None:
        self._holder = _TASK_HOLDER
        self._cond.release()
        try:
            task.fn()
        except Exception:
            log.exception("stand-in scheduled task failed")
        finally:
            self._cond.acquire()
        self._holder = None
        self._dispatch()
