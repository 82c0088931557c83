"""What happened in a run, read from the system of record (the database) and from the phone network
(the stand-in), and every broken promise (invariant violation) found by comparing the two."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select

from directo.core.models import Call as CallRow
from directo.core.models import Callback, Complaint, SmsMessage, utcnow
from directo.core.services import Services
from directo.core.states import (
    MESSAGE_STATUS,
    NOT_REACHED,
    OPEN,
    CallbackKind,
    CallbackState,
    Direction,
    SmsState,
    SmsTopic,
    ToldVia,
)
from routing.promise_report import LATE, MISSED, ON_TIME, WAITING, owner_missed, standing
from standin.model import Call, Message
from standin.network import Network

from .desk import Flagged, Remembered


@dataclass
class Violation:
    kind: str
    detail: str


@dataclass
class Summary:
    calls: int = 0
    answered: int = 0
    abandoned: int = 0
    callbacks_offered: int = 0
    turned_away: int = 0
    repeat_answered: int = 0
    to_previous_agent: int = 0
    answer_seconds: dict[str, float] = field(default_factory=dict)
    callbacks: dict[str, int] = field(default_factory=dict)
    complaints: dict[str, int] = field(default_factory=dict)
    promises: dict[str, int] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    away: dict[str, int] = field(default_factory=dict)
    webhooks: int = 0
    violations: list[Violation] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        """The summary a supervisor reads: plain words, one fact a line."""
        share = f"{self.to_previous_agent}/{self.repeat_answered}" if self.repeat_answered else "0/0"
        answer = self.answer_seconds
        previous = _pct(self.to_previous_agent, self.repeat_answered)
        lines = [
            f"Calls placed:              {self.calls}",
            f"  answered by a person:    {self.answered} ({_pct(self.answered, self.calls)})",
            f"  turned into a callback:  {self.callbacks_offered}",
            f"  caller hung up first:    {self.abandoned}",
            f"  nobody, no callback:     {self.turned_away}",
            f"Repeat callers answered by their previous agent: {share} ({previous})",
            "Time to a person (simulated seconds): "
            + (f"median {answer['p50']:.1f}, 90% within {answer['p90']:.1f}, longest {answer['max']:.1f}"
               if answer else "no call answered"),
            "Callbacks: promised {promised}, kept {kept} (on time {on time}, late {late}), missed {missed}, "
            "still pending {pending}".format(**self.callbacks),
            "Complaints: flagged {flagged}, acknowledged to the caller {acknowledged}, SMS delivered {sms_delivered}"
            .format(**self.complaints),
            "  then: resolved {resolved}, customer told {told} (by SMS {told_by_sms}), verified {verified} "
            "(satisfied {satisfied}, reopened {reopened})".format(**self.complaints),
            "Promises with a date: made {made}, kept on time {on time}, late {late}, missed {missed}, "
            "kept by another agent (owner missed) {owner missed}, still waiting {waiting}".format(**self.promises),
            _memory_line(self.memory),
            "Agents set away (an offer they did not answer): {set_away}, of them rung while on another call: "
            "{ignored_while_busy}".format(**self.away),
            f"Webhooks answered: {self.webhooks}",
        ]
        if self.violations:
            lines.append(f"INVARIANT VIOLATIONS: {len(self.violations)}")
            lines += [f"  - {v.kind}: {v.detail}" for v in self.violations]
        else:
            lines.append("Invariant violations: none")
        return "\n".join(lines)


def _memory_line(memory: dict[str, Any]) -> str:
    """Whether returning callers' agents were shown what the last agent wrote, with one of them as an example."""
    if not memory.get("returning"):
        return "Returning callers shown the last call's notes and name: none returned"
    line = (f"Returning callers shown the last call's notes: {memory['notes_shown']}/{memory['returning']}, "
            f"their name: {memory['name_shown']}/{memory['returning']}")
    example = memory.get("example")
    if example:
        line += f"\n  e.g. {example['agent']} greeted {example['name']}, whose last call noted: \"{example['notes']}\""
    return line


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "p50": statistics.median(ordered),
        "p90": ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))],
        "max": ordered[-1],
    }


def person_leg(root: Call, agents: set[str]) -> Call | None:
    """The agent's leg that was answered on this call, if any."""
    return next((leg for leg in root.legs[1:] if leg.to in agents and leg.answered_at is not None), None)


def summarise(svc: Services, network: Network, roots: list[Call], agents: list[str],
              flagged: list[Flagged], remembered: list[Remembered] | None = None) -> Summary:
    """Count outcomes for this run's calls only: the database may hold earlier runs and real work."""
    endpoints = {f"client:{identity}" for identity in agents}
    sids = [root.sid for root in roots]
    legs = network.calls
    with svc.db.session() as session:
        rows = {row.call_sid: row for row in session.scalars(select(CallRow).where(CallRow.call_sid.in_(sids)))}
        ids = [row.id for row in rows.values()]
        promised = {row.callback_id for row in rows.values() if row.callback_id is not None}
        callbacks = list(session.scalars(select(Callback).where(Callback.id.in_(promised))))
        complaints = list(session.scalars(select(Complaint).where(Complaint.call_id.in_(ids))))
        sms = list(session.scalars(
            select(SmsMessage).where(SmsMessage.complaint_id.in_([c.id for c in complaints]))))
        made = list(session.scalars(select(Callback).where(Callback.kind == CallbackKind.PROMISE,
                                                           Callback.origin_call_id.in_(ids))))
        session.expunge_all()
    summary = Summary(calls=len(roots))
    violations = summary.violations
    waits = []
    for root in roots:
        row = rows.get(root.sid)
        answered = person_leg(root, endpoints)
        if row is None:
            violations.append(Violation("call not recorded", f"{root.sid} from {root.from_} has no call record"))
        if answered is not None:
            summary.answered += 1
            waits.append(answered.answered_at - root.created_at)
            if row is not None and row.previous_agent_id is not None:
                summary.repeat_answered += 1
                summary.to_previous_agent += row.agent_id == row.previous_agent_id
        elif row is not None and row.callback_id is not None:
            summary.callbacks_offered += 1
        elif root.hung_up_by == "caller":
            summary.abandoned += 1
        else:
            summary.turned_away += 1
            outcome = row.outcome if row is not None else "unrecorded"
            violations.append(Violation(
                "caller left without a person",
                f"{root.sid} from {root.from_}: not answered, no callback, caller did not hang up ({outcome})"))
    summary.answer_seconds = percentiles(waits)
    violations += overlapping_offers(legs, endpoints)
    summary.away = unanswered_offers(legs, endpoints)
    trees = [leg for leg in legs if leg.parent is None]
    violations += webhook_failures(trees)
    summary.webhooks = sum(len(tree.webhooks()) for tree in trees)
    reached = {root.from_ for root in roots if person_leg(root, endpoints) is not None}
    summary.callbacks = callback_counts(callbacks, legs, reached, violations)
    summary.complaints = complaint_counts(complaints, sms, flagged, network.messages, violations)
    summary.promises = promise_counts(made)
    summary.memory = memory_counts(remembered or [], violations)
    return summary


def promise_counts(made: list[Callback]) -> dict[str, int]:
    """Dated promises made on this run's calls: kept on time, late, missed, kept by someone else, still waiting."""
    standings = [standing(callback, utcnow()) for callback in made]
    return {"made": len(made), "on time": standings.count(ON_TIME), "late": standings.count(LATE),
            "missed": standings.count(MISSED), "waiting": standings.count(WAITING),
            "owner missed": sum(owner_missed(callback) for callback in made)}


def memory_counts(remembered: list[Remembered], violations: list[Violation]) -> dict[str, Any]:
    """A returning caller's agent not shown what the last agent wrote is a broken promise of the memory."""
    for seen in remembered:
        if not (seen.notes_shown and seen.name_shown):
            violations.append(Violation("memory not shown", f"{seen.agent} answered {seen.number} without "
                                                            f"{'the notes' if not seen.notes_shown else 'the name'} "
                                                            "the last agent wrote"))
    example = next((r for r in remembered if r.notes_shown and r.name_shown), None)
    return {"returning": len(remembered), "notes_shown": sum(r.notes_shown for r in remembered),
            "name_shown": sum(r.name_shown for r in remembered),
            "example": {"agent": example.agent, "name": example.name, "notes": example.notes} if example else None}


def overlapping_offers(legs: list[Call], endpoints: set[str]) -> list[Violation]:
    """An agent given two calls at once: two legs to the same softphone alive at the same (virtual) time."""
    by_agent: dict[str, list[Call]] = defaultdict(list)
    for leg in legs:
        if leg.to in endpoints and leg.direction != Direction.INBOUND:
            by_agent[leg.to].append(leg)
    found = []
    for endpoint, offers in by_agent.items():
        offers.sort(key=lambda leg: leg.created_at)
        for before, after in zip(offers, offers[1:], strict=False):
            ended = before.ended_at if before.ended_at is not None else float("inf")
            if after.created_at < ended:
                found.append(Violation("agent given two calls", f"{endpoint}: {before.sid} and {after.sid} overlap "
                                                                 f"at t={after.created_at:.1f}s"))
    return found


def unanswered_offers(legs: list[Call], endpoints: set[str]) -> dict[str, int]:
    """Offers agents did not answer: Directo takes each for an agent away from the desk and sets them away. Those
    their softphone ignored because they were on another call are counted apart (the SDK never showed them)."""
    missed = [leg for leg in legs if leg.to in endpoints and leg.direction != Direction.INBOUND
              and leg.status in NOT_REACHED]
    return {"set_away": len(missed),
            "ignored_while_busy": sum(1 for leg in missed if leg.find("client.ignored", sid=leg.sid))}


def webhook_failures(roots: list[Call]) -> list[Violation]:
    """Every webhook answered with a non-2xx status (or not at all), and every TwiML Twilio would reject. A webhook
    still on its way when the run ended is not one: past Twilio's 15 s the stand-in records it failed (11205)."""
    found = []
    for root in roots:
        for event in root.webhooks():
            status = event.get("status")
            if status is None and event.get("error_code") is None:
                continue
            if status is None or not 200 <= int(status) < 300:
                found.append(Violation("webhook failed", f"{event['purpose']} {event['url']} answered "
                                                         f"{status or event.get('error') or 'nothing'}"))
        for event in root.find("twiml_error") + root.find("error"):
            found.append(Violation("invalid TwiML" if event.kind == "twiml_error" else "Twilio error",
                                   f"{root.sid}: {event.get('code')} {event.get('message')}"))
    return found


def callback_counts(callbacks: list[Callback], legs: list[Call], called_in: set[str],
                    violations: list[Violation]) -> dict[str, int]:
    """A promise is kept (the customer was reached, by the callback or calling in again; on time when by the time
    promised), missed (visible as missed), pending, or lost: a violation."""
    reached = called_in | {leg.to for leg in legs if leg.direction != Direction.INBOUND and leg.answered_at is not None}
    counts = {"promised": len(callbacks), "kept": 0, "on time": 0, "late": 0, "missed": 0, "pending": 0}
    for callback in callbacks:
        if callback.state == CallbackState.DONE and callback.phone in reached:
            counts["kept"] += 1
            counts["on time" if callback.closed_at <= callback.promised_by else "late"] += 1
        elif callback.state == CallbackState.MISSED:
            counts["missed"] += 1
        elif callback.state in OPEN:
            counts["pending"] += 1
        else:
            violations.append(Violation("callback lost", f"callback {callback.id} to {callback.phone} is "
                                                         f"{callback.state} but the customer was never reached"))
    return counts


def complaint_counts(complaints: list[Complaint], sms: list[SmsMessage], flagged: list[Flagged],
                     messages: list[Message], violations: list[Violation]) -> dict[str, int]:
    """Flagged complaints must carry a reference; acknowledged = the caller heard it; SMS as the network saw it;
    then how far their lives went: resolved, the customer told, verified by a follow-up."""
    delivered = {message.sid for message in messages if MESSAGE_STATUS.get(message.status) == SmsState.DELIVERED}
    for complaint in complaints:
        if not complaint.reference:
            violations.append(Violation("complaint without a reference", f"complaint {complaint.id}"))
    for attempt in flagged:
        if attempt.error:
            violations.append(Violation("complaint refused", f"{attempt.call_sid} by {attempt.agent}: {attempt.error}"))
        elif not attempt.reference:
            violations.append(Violation("complaint without a reference",
                                        f"{attempt.call_sid} by {attempt.agent}: flagged, no reference given"))
    return {
        "flagged": len(complaints),
        "acknowledged": sum(1 for complaint in complaints if complaint.spoken_at is not None),
        "sms_delivered": sum(1 for message in sms if message.message_sid in delivered
                             and message.topic == SmsTopic.COMPLAINT_REFERENCE),
        "resolved": sum(1 for complaint in complaints if complaint.resolved_at is not None),
        "told": sum(1 for complaint in complaints if complaint.first_told_at is not None),
        "told_by_sms": sum(1 for complaint in complaints if complaint.told_via == ToldVia.SMS),
        "verified": sum(1 for complaint in complaints if complaint.verified_at is not None),
        "satisfied": sum(1 for complaint in complaints if complaint.satisfied),
        "reopened": sum(1 for complaint in complaints if complaint.reopened_count),
    }
