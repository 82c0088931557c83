"""The run loop: place N calls from the population against the server, at most C at once, then settle and count."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from directo.core.models import Call as CallRow
from directo.core.models import Callback, Complaint, SmsMessage, utcnow
from directo.core.services import Services
from directo.core.states import MESSAGE_STATUS, OPEN, SMS_FINAL, CallbackState, SmsState
from routing.dispatch import dispatch
from standin import StandIn
from standin.model import Call

from .desk import Desk
from .people import Habits, customer_behaviour, patience
from .population import Caller, Population
from .summary import Summary, person_leg, summarise

logger = logging.getLogger(__name__)

OUR_NUMBER = "+34910000000"
WEBHOOK_SECONDS = 15.0  # how long Twilio waits for a webhook's answer
LONGEST_CALL = 900.0  # simulated seconds a call may take: rings, retries, a long talk, a recorded reason


@dataclass(frozen=True)
class Options:
    base_url: str
    calls: int = 50
    agents: int = 5
    concurrency: int = 10
    seed: int = 1
    complaint_rate: float = 0.05
    time_scale: float = 0.02  # real seconds per simulated second: a 2-minute call takes 2.4 s
    twilio_port: int = 5081
    number: str = OUR_NUMBER
    settle_seconds: float = 30.0  # real seconds to wait for callbacks and SMS after the last call
    rate: float | None = None  # new calls per real second; None: `load` of what the agents can handle
    load: float = 0.8
    habits: Habits = field(default_factory=Habits)
    # Web processes behind `base_url`: webhooks are spread over them as a load balancer would (PUBLIC_BASE_URL is
    # `base_url`, where nothing need listen).
    upstreams: tuple[str, ...] = ()


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    answered: int
    in_flight: int


class Simulation:
    """One simulated day: a stand-in Twilio on `twilio_port`, agents at their desks, callers from a population."""

    def __init__(self, svc: Services, options: Options, on_progress: Callable[[Progress], None] | None = None) -> None:
        self.svc = svc
        self.options = options
        self.on_progress = on_progress
        self.rng = random.Random(options.seed)
        config = svc.config
        self.standin = StandIn(config.twilio_account_sid, config.twilio_auth_token, time_scale=options.time_scale,
                               seed=options.seed, port=options.twilio_port,
                               upstreams={options.base_url: options.upstreams} if options.upstreams else None)
        self.network = self.standin.network
        self.desk = Desk(svc, self.standin, random.Random(options.seed + 1), options.habits, options.complaint_rate,
                         options.base_url, chat=random.Random(options.seed + 3))
        self.population = Population(random.Random(options.seed + 2))
        self.roots: list[Call] = []
        self._lock = threading.Lock()
        self._done = 0
        self._answered = 0
        self.started = time.monotonic()

    def __enter__(self) -> Simulation:
        self.standin.start()
        self.desk.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.desk.stop()
        self.standin.stop()

    @property
    def agents(self) -> list[str]:
        return self.desk.identities

    def staff(self, count: int | None = None) -> list[str]:
        return self.desk.staff(self.options.agents if count is None else count)

    # -- calls ------------------------------------------------------------------------------------
    def place(self, caller: Caller, *, hang_up_after: float | None = None) -> Call:
        """A caller dials our number; `hang_up_after` simulated seconds without a person, they give up."""
        self.network.set_behaviour(caller.number, customer_behaviour(self.rng, self.options.habits))
        base = self.options.base_url.rstrip("/")
        call = self.network.place_inbound_call(caller.number, self.options.number, f"{base}/voice/incoming",
                                               status_callback=f"{base}/voice/status")
        with self._lock:
            self.roots.append(call)
        if hang_up_after is not None:
            self.desk.later(hang_up_after, lambda: self._give_up(call))
        return call

    def _give_up(self, call: Call) -> None:
        if not call.ended and person_leg(call, {f"client:{a}" for a in self.agents}) is None:
            self.network.hangup(call.sid)

    def fast_forward(self, callback_id: int) -> None:
        """The simulator's clock jumps to a dated call's day (a complaint's follow-up, a week on): it falls due now,
        kept for its owner for COMPLAINT_OWNER_MINUTES, as if those days had passed; then it is dispatched."""
        now = utcnow()
        with self.svc.db.session() as session:
            session.execute(update(Callback).where(Callback.id == callback_id, Callback.state == CallbackState.QUEUED)
                            .values(due_at=now, exclusive_until=now + timedelta(
                                minutes=self.svc.config.complaint_owner_minutes)))
        dispatch(self.svc)

    def wait(self, call: Call) -> Call:
        return call.wait(LONGEST_CALL * self.options.time_scale + 60)

    def run(self) -> Summary:
        """The whole day: every call placed and finished, then the promises kept meanwhile are counted."""
        if not self.agents:
            self.staff()
        callers = [self.population.next_caller() for _ in range(self.options.calls)]
        give_up = [patience(self.rng, self.options.habits) for _ in callers]
        slots = threading.BoundedSemaphore(max(1, self.options.concurrency))
        started = time.monotonic()
        rate = self.arrival_rate()

        def one(i: int) -> None:
            try:
                self._one(callers[i], give_up[i])
            finally:
                slots.release()

        with ThreadPoolExecutor(max_workers=max(1, self.options.concurrency), thread_name_prefix="sim-call") as pool:
            placed = []
            for i in range(len(callers)):
                time.sleep(max(0.0, started + i / rate - time.monotonic()))
                slots.acquire()
                placed.append(pool.submit(one, i))
        for future in placed:
            future.result()  # a call that never finished is an error of the run, not a statistic
        self.settle()
        return self.summary()

    def arrival_rate(self) -> float:
        """New calls per real second: as asked, or a busy but staffed day (`load` of the agents' capacity)."""
        if self.options.rate:
            return self.options.rate
        handling = self.options.habits.handling_seconds * self.options.time_scale
        return self.options.load * max(1, len(self.agents)) / handling

    def _one(self, caller: Caller, give_up: float | None) -> Call:
        call = self.wait(self.place(caller, hang_up_after=give_up))
        with self._lock:
            self._done += 1
            self._answered += person_leg(call, {f"client:{a}" for a in self.agents}) is not None
            progress = Progress(self._done, self.options.calls, self._answered,
                                sum(1 for root in self.roots if not root.ended))
        if self.on_progress is not None:
            self.on_progress(progress)
        return call

    def settle(self, timeout: float | None = None) -> None:
        """After the last call: wait (real seconds) for pending callbacks and SMS, the desk and every webhook."""
        deadline = time.monotonic() + (self.options.settle_seconds if timeout is None else timeout)
        while time.monotonic() < deadline and self._outstanding():
            time.sleep(0.2)
        # A call the server began meanwhile gets as long as Twilio gives one webhook to finish what is under way.
        deadline = max(deadline, time.monotonic() + WEBHOOK_SECONDS)
        for root in self.network.calls:
            if root.parent is None and not root.ended:
                try:
                    root.wait(max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    logger.warning("call %s still live at the end of the run", root.sid)
        self.desk.idle()
        self.standin.flush()

    def _outstanding(self) -> bool:
        """Callbacks still to be made for this run's calls, or SMS the server has not finished sending."""
        sids = [root.sid for root in self.roots]
        if any(not root.ended for root in self.roots):
            return True
        with self.svc.db.session() as session:
            ids = select(CallRow.id).where(CallRow.call_sid.in_(sids))
            promised = select(CallRow.callback_id).where(CallRow.call_sid.in_(sids))
            callbacks = session.scalar(select(func.count()).select_from(Callback).where(
                Callback.id.in_(promised) | Callback.origin_call_id.in_(ids), Callback.state.in_(OPEN)))
            complaints = select(Complaint.id).where(Complaint.call_id.in_(ids))
            # Promised call-backs, and the calls the run's complaints are owed today (not the follow-ups, a week on).
            callbacks = session.scalar(select(func.count()).select_from(Callback).where(
                Callback.id.in_(promised) | (Callback.complaint_id.in_(complaints) & (Callback.due_at <= utcnow())),
                Callback.state.in_(OPEN)))
            sms = session.scalar(select(func.count()).select_from(SmsMessage).where(
                SmsMessage.complaint_id.in_(complaints), SmsMessage.state.not_in(SMS_FINAL)))
        messages = any(MESSAGE_STATUS.get(m.status, SmsState.FAILED) not in SMS_FINAL for m in self.network.messages)
        return bool(callbacks or sms or messages or self.desk.busy)

    def summary(self) -> Summary:
        summary = summarise(self.svc, self.network, list(self.roots), self.agents, list(self.desk.flagged),
                            list(self.desk.remembered))
        summary.run = self.facts()
        return summary

    def facts(self) -> dict[str, Any]:
        options = self.options
        return {
            "base_url": options.base_url, "upstreams": list(options.upstreams), "agents": len(self.agents),
            "concurrency": options.concurrency,
            "calls_per_second": round(self.arrival_rate(), 2),
            "seed": options.seed, "complaint_rate": options.complaint_rate, "time_scale": options.time_scale,
            "wall_seconds": round(time.monotonic() - self.started, 1),
            "simulated_seconds": round(self.network.now, 1),
            "desk_errors": list(self.desk.action_errors),
        }
