"""How simulated people behave, in virtual seconds: agents ring, answer or not, talk; customers wait or give up."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from standin import Answer, Behaviour, NoAnswer


@dataclass(frozen=True)
class Habits:
    """The knobs of a simulated day; the defaults resemble a support line (calls of a few minutes)."""

    ring: tuple[float, float] = (2.0, 8.0)  # an agent picks up after this many seconds
    agent_no_answer: float = 0.05  # share of offers an agent lets ring out (they are away from the desk)
    talk: tuple[float, float] = (45.0, 240.0)
    wrapup: tuple[float, float] = (5.0, 20.0)  # notes after a call, then the agent presses "ready"
    back_at_desk: tuple[float, float] = (30.0, 120.0)  # an agent set away for a missed call comes back
    early_hangup: float = 0.05  # share of callers who give up while it rings
    patience: tuple[float, float] = (3.0, 15.0)
    customer_answers: float = 0.9  # share of callbacks the customer picks up
    reason_seconds: tuple[float, float] = (3.0, 8.0)  # how long a caller speaks their reason for a callback
    resolve_after: tuple[float, float] = (60.0, 300.0)  # an owner writes a complaint's resolution after its call
    accepts_remedy: float = 0.9  # share of customers who accept the remedy when it is explained to them
    satisfied: float = 0.85  # share of customers the follow-up finds satisfied
    promise_rate: float = 0.1  # share of conversations in which the agent promises to call back with an answer
    promise_after: tuple[float, float] = (600.0, 2400.0)  # how far ahead such a promise falls

    @property
    def handling_seconds(self) -> float:
        """What one answered call costs an agent on average: rings, talk, wrap-up."""
        return sum((low + high) / 2 for low, high in (self.ring, self.talk, self.wrapup))


# Names as customers give them: accents, apostrophes and other scripts are kept exactly.
NAMES = ("Lucía Núñez", "José Ibáñez", "Seán O'Brien", "김민준", "Zoë Çelik", "Begoña Azcárate", "Mary-Jane Smith",
         "Joaquín Suárez", "Ana María Peña", "Chloé Martín")
# What callers call about, as an agent notes it.
TOPICS = ("Charged twice on the March invoice", "Wants to move the delivery to Friday", "Router keeps dropping",
          "Asks for a copy of the contract", "New address for the bills", "Refund not received yet")


def agent_behaviour(rng: random.Random, habits: Habits) -> Callable[[], Behaviour]:
    """A fresh decision for every offer: most are answered after some rings, a few ring out."""

    def decide() -> Behaviour:
        if rng.random() < habits.agent_no_answer:
            return NoAnswer()
        return Answer(after=rng.uniform(*habits.ring), talk=rng.uniform(*habits.talk))

    return decide


def customer_behaviour(rng: random.Random, habits: Habits) -> Callable[[], Behaviour]:
    """The customer's phone: how long they speak into <Record>, and whether they pick up a callback."""

    def decide() -> Behaviour:
        speech = rng.uniform(*habits.reason_seconds)
        if rng.random() >= habits.customer_answers:
            return NoAnswer(speech_seconds=speech)
        return Answer(after=rng.uniform(*habits.ring), talk=None, speech_seconds=speech)

    return decide


def patience(rng: random.Random, habits: Habits) -> float | None:
    """Seconds before this caller hangs up if nobody has answered; None for the many who wait."""
    return rng.uniform(*habits.patience) if rng.random() < habits.early_hangup else None
