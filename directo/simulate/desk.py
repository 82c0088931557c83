"""The simulated agents at their desks: they press "ready" after wrap-up, come back after a missed call, flag
complaints during conversations, write their resolution a while later, and after a complaint's explanation or
follow-up call record what the customer said, through the same services the agent page uses."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import select

from directo.core.models import Agent, Callback, Complaint, Customer
from directo.core.models import Call as CallRow
from directo.core.services import Services
from directo.core.states import AgentStatus, CallbackKind, CallbackState, CallStatus, ComplaintState
from directo.core.unit_of_work import work
from recordings.complaints import flag
from recordings.errors import ComplaintError, TooEarly
from routing import agents, complaint_life, customers, memory, roster
from routing.complaint_life import Actor
from routing.errors import Refused
from routing.presence import presence
from standin import StandIn
from standin.model import Call, Event

from .clockwork import Clockwork
from .people import NAMES, TOPICS, Habits, agent_behaviour

logger = logging.getLogger(__name__)

NOT_REACHED = (CallStatus.NO_ANSWER, CallStatus.BUSY)
COMPLAINT_SUMMARY = "Simulated complaint: the customer is unhappy with a previous answer."
RESOLUTION = {"explanation": "We gave you a wrong answer on a previous call.",
              "remedy": "A corrected answer in writing and a discount on your next bill.",
              "cause": "The call script had no entry for this case."}
# Virtual seconds between looks at a callback call's outcome, and how many looks, before the desk gives up on it.
OUTCOME_LOOK = 2.0
OUTCOME_LOOKS = 10


@dataclass
class Remembered:
    """A returning caller's call, as its agent found it: what the last agent wrote, and whether it was shown."""

    number: str
    agent: str
    name_shown: bool
    notes_shown: bool
    name: str
    notes: str


@dataclass
class Flagged:
    """A complaint an agent flagged, as the agent saw it: the reference given back, or the error."""

    call_sid: str
    agent: str
    reference: str | None
    error: str | None = None


class Desk:
    """Watches the stand-in's event log and acts for the agents as people at a desk would."""

    def __init__(self, svc: Services, standin: StandIn, rng: random.Random, habits: Habits,
                 complaint_rate: float, base_url: str, chat: random.Random | None = None) -> None:
        self.svc = svc
        self.base_url = base_url.rstrip("/")
        self.standin = standin
        self.network = standin.network
        self.rng = rng
        # What the agents say and write draws from its own generator: the day's other choices stay as they were.
        self.chat = chat or random.Random(0)
        self.habits = habits
        self.complaint_rate = complaint_rate
        self.resolve_complaints = True  # owners write the resolution of the complaints they flag
        self.promise_rate = habits.promise_rate
        self.identities: list[str] = []
        self.flagged: list[Flagged] = []
        self.remembered: list[Remembered] = []
        # What the agents wrote about each caller last time: (name, notes), to check the next agent is shown it.
        self.written: dict[str, tuple[str, str]] = {}
        self.clockwork = Clockwork(svc, standin.network.scheduler.time_scale, self.later,
                                   lambda: standin.network.now, f"{self.base_url}/voice/complaints/sms-status")
        self.action_errors: list[str] = []
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sim-desk")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._busy = 0
        self._seen = 0
        self._watcher = threading.Thread(target=self._watch, name="sim-desk-watch", daemon=True)

    # -- staff ------------------------------------------------------------------------------------
    def staff(self, count: int, prefix: str = "sim") -> list[str]:
        """Agents `sim-01`..: created once, available now, each with a softphone in the stand-in."""
        identities = [f"{prefix}-{n:02d}" for n in range(1, count + 1)]
        with self.svc.db.session() as session:
            existing = set(session.scalars(select(Agent.identity).where(Agent.identity.in_(identities))))
            earlier = set(session.scalars(select(Agent.identity).where(
                Agent.identity.like(f"{prefix}-%"), Agent.active.is_(True), Agent.status != AgentStatus.OFFLINE)))
        for identity in sorted(earlier - set(identities)):  # an earlier run's simulated agents go home
            with contextlib.suppress(Refused):
                agents.set_status(self.svc, identity, AgentStatus.OFFLINE)
        for n, identity in enumerate(identities, 1):
            if identity not in existing:
                roster.add_agent(self.svc, identity, f"Simulated agent {n}", ["es", "en"])
            agents.set_status(self.svc, identity, AgentStatus.AVAILABLE)
            self.network.set_behaviour(f"client:{identity}", agent_behaviour(self.rng, self.habits))
        self.identities = identities
        return identities

    def start(self) -> Desk:
        self._watcher.start()
        return self

    def stop(self) -> None:
        self.clockwork.stop()
        self._stop.set()
        self._watcher.join(5)
        self._pool.shutdown(wait=True)

    def idle(self, timeout: float = 10.0) -> bool:
        """Wait (real seconds) until the agents have seen every event and no action of theirs is pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self._busy == 0 and self._seen >= len(self.network.log.items):
                    return True
            time.sleep(0.02)
        return False

    @property
    def busy(self) -> bool:
        """Some action is still to come (a resolution to write, an answer to record)."""
        with self._lock:
            return self._busy > 0

    def later(self, delay: float, action: Callable[[], None]) -> None:
        """Run `action` after `delay` virtual seconds; the stand-in's clock keeps flowing until then."""
        with self._lock:
            self._busy += 1
        self.network.scheduler.at(delay, lambda: self._pool.submit(self._run, action))

    def _run(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as error:  # a failed desk action is reported, never fatal to the run
            logger.exception("simulated agent action failed")
            self.action_errors.append(f"{type(error).__name__}: {error}")
        finally:
            with self._lock:
                self._busy -= 1

    # -- what the agents see ----------------------------------------------------------------------
    def _watch(self) -> None:
        network = self.network
        while not self._stop.is_set():
            with network.changed:
                network.changed.wait(0.05)
                fresh = network.log.items[self._seen:]
                self._seen += len(fresh)
            for event in fresh:
                if event.kind == "call.status":
                    self._on_status(event)

    def _on_status(self, event: Event) -> None:
        leg = self.network.call(event.sid or "")
        if leg is None or not leg.to.startswith("client:"):
            return
        identity = leg.to.removeprefix("client:")
        if identity not in self.identities:
            return
        status = event["status"]
        if status == CallStatus.IN_PROGRESS:
            talk = getattr(leg.behaviour, "talk", None) or 60.0
            if leg.parent is not None:  # a caller's call: read the screen pop, then note what they said
                parent = leg.parent.sid
                self.later(talk * self.chat.uniform(0.05, 0.15), lambda: self._converse(parent, identity))
            if leg.parent is not None and self.rng.random() < self.complaint_rate:
                self.later(talk * self.rng.uniform(0.2, 0.6), lambda: self._complain(leg, identity))
        elif status == CallStatus.COMPLETED and leg.answered_at is not None:
            self.later(self.rng.uniform(*self.habits.wrapup), lambda: self._ready(identity, AgentStatus.WRAPUP))
            if leg.parent is None:  # an agent-first call: a callback, maybe one a complaint was owed
                self.later(OUTCOME_LOOK, lambda: self._after_callback(leg.sid, identity, OUTCOME_LOOKS))
        elif status in NOT_REACHED:
            self.later(self.rng.uniform(*self.habits.back_at_desk), lambda: self._ready(identity, AgentStatus.AWAY))

    # -- what the agents do -----------------------------------------------------------------------
    def _ready(self, identity: str, state: str) -> None:
        """Press "ready" if still in that state; a wrap-up about to end by itself is left to end."""
        live = presence(self.svc).state(identity)
        if live.get("status") != state:
            return
        if state == AgentStatus.WRAPUP and float(live.get("until") or 0) < time.time() + 1:
            return
        agents.set_status(self.svc, identity, AgentStatus.AVAILABLE)

    def _converse(self, call_sid: str, identity: str) -> None:
        """What an agent does with a caller: reads what we remember of them, asks the name of a new one, notes
        what the call was about, and now and then promises to call back with an answer."""
        with self.svc.db.session() as session:
            call = session.scalar(select(CallRow).where(CallRow.call_sid == call_sid))
            customer = session.get(Customer, call.customer_id) if call is not None and call.customer_id else None
            if call is None or customer is None or customer.forgotten_at is not None:
                return
            number, customer_id, call_id = customer.phone, customer.id, call.id
            before = self.written.get(number)  # read first: what was written by then is committed by then
            shown = memory.remember(session, customer, exclude_call=call.id)
        if before is not None:
            notes = [contact["notes"] for contact in shown["contacts"]]
            self.remembered.append(Remembered(number, identity, shown["profile"]["name"] == before[0],
                                              before[1] in notes, before[0], before[1]))
        name = shown["profile"]["name"] or self.chat.choice(NAMES)
        notes = f"{self.chat.choice(TOPICS)} (noted by {identity})"
        # Two saves, as on the agent page (the notes box, then the profile), each its own unit of work.
        with self.svc.db.session() as session:
            session.get(CallRow, call_id).notes = notes
        if shown["profile"]["name"] is None:
            with work(self.svc.db) as unit:
                customers.change(unit.session, customer_id, {"name": name}, identity, unit.now)
        self.written[number] = (name, notes)
        if self.chat.random() < self.promise_rate:
            after = self.chat.uniform(*self.habits.promise_after)
            self.clockwork.promise(call_sid, identity, after, f"an answer about: {notes.split(' (')[0].lower()}")

    def _complain(self, leg: Call, identity: str, tries: int = 3) -> None:
        if leg.ended or leg.parent is None:
            return  # the conversation is over: the moment to flag it during the call has passed
        call_sid = leg.parent.sid
        try:
            # What the agent page's complaint button does, with the same SMS status callback URL.
            flagged = flag(self.svc, call_sid, identity, summary=COMPLAINT_SUMMARY,
                           status_url=f"{self.base_url}/voice/complaints/sms-status")
        except Exception as error:  # the summary reports a refused flag; the agent carries on
            if isinstance(error, TooEarly) and tries > 1:
                # The agent hears the customer before a loaded server has recorded the answer: they click again.
                self.later(OUTCOME_LOOK, lambda: self._complain(leg, identity, tries - 1))
                return
            self.flagged.append(Flagged(call_sid, identity, None, f"{type(error).__name__}: {error}"))
            return
        self.flagged.append(Flagged(call_sid, identity, flagged.reference or None))
        if flagged.created and self.resolve_complaints:
            talk = getattr(leg.behaviour, "talk", None) or 60.0
            self.later(talk + self.rng.uniform(*self.habits.resolve_after),
                       lambda: self._resolve(flagged.reference, identity))

    def _resolve(self, reference: str, identity: str) -> None:
        """The owner writes the resolution, as on their page; the explanation call is then owed."""
        try:
            complaint_life.resolve(self.svc, reference, by=Actor(identity), **RESOLUTION)
        except ComplaintError as error:
            self.action_errors.append(f"resolving {reference}: {error}")

    def _after_callback(self, call_sid: str, identity: str, looks: int) -> None:
        """After a complaint's explanation or follow-up call that reached the customer, record what they said."""
        with self.svc.db.session() as session:
            row = session.execute(
                select(Callback.kind, Callback.state, Complaint.reference, Complaint.state, Complaint.remedy_accepted)
                .join(CallRow, CallRow.callback_id == Callback.id)
                .join(Complaint, Complaint.id == Callback.complaint_id)
                .where(CallRow.call_sid == call_sid)).first()
        if row is None:
            return
        kind, callback_state, reference, state, accepted = row
        if callback_state == CallbackState.DIALING and looks > 0:  # the call's outcome is still on its way
            self.later(OUTCOME_LOOK, lambda: self._after_callback(call_sid, identity, looks - 1))
            return
        if callback_state != CallbackState.DONE or state != ComplaintState.TOLD:
            return  # the customer was not reached, or someone else recorded it
        try:
            if kind == CallbackKind.COMPLAINT_TOLD and accepted is None:
                agrees = self.rng.random() < self.habits.accepts_remedy
                complaint_life.record_answer(self.svc, reference, accepted=agrees, by=Actor(identity),
                                             note="Fine, thank you." if agrees else "That is not enough.")
            elif kind == CallbackKind.COMPLAINT_FOLLOWUP:
                happy = self.rng.random() < self.habits.satisfied
                complaint_life.verify(self.svc, reference, satisfied=happy, by=Actor(identity),
                                      note="It works now." if happy else "It still does not work.")
        except ComplaintError as error:
            self.action_errors.append(f"after the call on {reference}: {error}")
