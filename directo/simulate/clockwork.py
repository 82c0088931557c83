"""Dated promises on the simulation's accelerated clock.

A simulated agent promises a call some simulated hours ahead. The server only accepts a real time in business
hours, so the promise is made for the first such moment at least that far ahead (and the customer is texted that
time). When the simulation's virtual clock reaches the promised moment, the promise's times are moved in the
database to now: due now, its owner's exclusive window and its window compressed by the time scale (as the tests
make time pass); the dispatcher is then nudged at the due time and again when the owner's grace runs out, as the
worker's sweep would be. The server's own retry delays (CALLBACK_RETRY_MINUTES) are not compressed, so a promise
whose customer does not answer is counted missed. Promises still waiting when the simulation ends are cancelled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import update

from directo.core.models import Callback, utcnow
from directo.core.services import Services
from directo.core.states import CallbackState
from routing import callback_admin, promises
from routing.dispatch import dispatch
from routing.errors import Refused

logger = logging.getLogger(__name__)
SIMULATOR = "simulator"


class Clockwork:
    """Makes promises for the simulated agents and keeps their dates on the virtual clock."""

    def __init__(self, svc: Services, time_scale: float, later: Callable[[float, Callable[[], None]], None],
                 now: Callable[[], float], status_url: str) -> None:
        self.svc = svc
        self.time_scale = time_scale
        self.later = later  # run an action after so many virtual seconds
        self.now = now  # the virtual clock
        self.status_url = status_url
        self.made: dict[int, float] = {}  # promise -> the virtual time it is due
        self._lock = threading.Lock()

    @property
    def grace(self) -> float:
        """The owner's exclusive window, in virtual seconds."""
        return self.svc.config.promise_grace_minutes * 60.0

    def promise(self, call_sid: str, identity: str, after: float, about: str) -> int:
        """`identity` promises on `call_sid` to call back `after` virtual seconds from now; the promise's id."""
        due = self.now() + after
        at = self.svc.config.hours.next_open(utcnow() + timedelta(seconds=after))
        made = promises.promise(self.svc, call_sid, at, about, identity, status_url=self.status_url)
        with self._lock:
            self.made[made.callback_id] = due
        self.later(after, lambda: self._fall_due(made.callback_id))
        self.later(after + self.grace, lambda: dispatch(self.svc))
        return made.callback_id

    def _fall_due(self, callback_id: int) -> None:
        """Virtual time reached the promise: on the server's clock it is due now, its windows scaled down."""
        now, scale, config = utcnow(), self.time_scale, self.svc.config
        with self.svc.db.session() as session:
            session.execute(update(Callback).where(Callback.id == callback_id,
                                                   Callback.state == CallbackState.QUEUED).values(
                due_at=now, exclusive_until=now + timedelta(seconds=self.grace * scale),
                promised_by=now + timedelta(seconds=config.promise_window_minutes * 60 * scale)))
        dispatch(self.svc)

    def due_at(self, callback_id: int) -> float | None:
        with self._lock:
            return self.made.get(callback_id)

    def stop(self) -> list[int]:
        """The simulation is over: promises still waiting are withdrawn, so no real agent is rung for them."""
        withdrawn = []
        for callback_id in list(self.made):
            try:
                callback_admin.cancel(self.svc, callback_id, "the simulation ended first", SIMULATOR)
                withdrawn.append(callback_id)
            except Refused:  # kept, missed, or being placed: nothing to withdraw
                continue
        return withdrawn
