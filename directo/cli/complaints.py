"""`directo complaints ...` (the register, and each step of a complaint's life) and `directo audit ...`."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from sqlalchemy import select

from directo.cli.common import day, refusing, services, table
from directo.core.models import Complaint
from directo.core.services import Services
from directo.core.states import ComplaintState
from recordings import audit as audit_log
from recordings import register, sms
from recordings.complaints import flag
from recordings.errors import ComplaintError
from recordings.jobs import resume_pending
from recordings.register import yes_no
from routing import complaint_life

BACK_OFFICE = "back-office"


@click.group()
def complaints() -> None:
    """The complaints register."""


@complaints.command("flag")
@click.argument("call_sid")
@click.option("--by", "flagged_by", default=BACK_OFFICE, show_default=True,
              help="Who is flagging it (recorded in the audit log).")
@click.option("--summary", default="", help="What the complaint is about.")
def complaints_flag(call_sid: str, flagged_by: str, summary: str) -> None:
    """Flag CALL_SID as a complaint (as a supervisor): the reference is issued and texted to the caller."""
    with services() as svc:
        try:
            flagged = flag(svc, call_sid, flagged_by, summary=summary, supervisor=True, status_url=sms.status_url(svc))
        except ComplaintError as error:
            raise click.ClickException(str(error)) from error
    click.echo(f"{flagged.reference} {'issued' if flagged.created else 'already issued'} for {call_sid}")


@complaints.command("list")
@click.option("--state", type=click.Choice([state.value for state in ComplaintState]),
              help="Only complaints in this state.")
@click.option("--overdue", is_flag=True, help="Only complaints whose customer was not told by the due date.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
def complaints_list(state: str | None, overdue: bool, as_json: bool, limit: int) -> None:
    """Newest first: reference, state, owner, due date, days open, what comes next, and how it was acknowledged."""
    with services() as svc, svc.db.session() as session:
        records = register.listing(session, register.query(state=state, overdue=overdue), limit=limit)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    table(["REFERENCE", "STATE", "REOPENED", "OWNER", "CALLER", "FLAGGED", "DUE", "DAYS", "FLAG", "SATISFIED", "SMS",
           "NEXT STEP"],
          [[r["reference"], r["state"], r["reopened_count"], r["owner"] or "-", r["phone"] or "withheld",
            day(r["flagged_at"]), day(r["due_at"]), r["days_open"], r["flag"] or "", yes_no(r["satisfied"]),
            r["sms"] or "-", r["next_step"]] for r in records])


@complaints.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True)
def complaints_show(reference: str, as_json: bool) -> None:
    """One complaint: state, owner, due date, the resolution, and every step with its time (audit entries, calls,
    texts, recording)."""
    with services() as svc, svc.db.session() as session, refusing(ComplaintError):
        complaint = complaint_life.find(session, reference)
        record = register.row(session, complaint)
        recording = complaint.recording
        record.update(
            agent=complaint.agent.identity if complaint.agent else None,
            spoken_at=complaint.spoken_at.isoformat() if complaint.spoken_at else None,
            messages=[{"topic": m.topic, "sid": m.message_sid, "state": m.state, "attempts": m.attempts,
                       "error": m.last_error, "updated_at": m.updated_at.isoformat()} for m in complaint.messages],
            recording_path=recording.path if recording else None,
            recording_format=recording.format if recording else None,
            recording_duration_ms=recording.duration_ms if recording else None,
            trail=[{"at": e.at.isoformat(timespec="seconds"), "event": e.event, "payload": json.loads(e.payload),
                    "hash": e.hash} for e in audit_log.entries(session, complaint.id)],
            steps=[{**step, "at": step["at"].isoformat(timespec="seconds")}
                   for step in register.timeline(session, complaint)],
        )
    if as_json:
        click.echo(json.dumps(record, indent=2, ensure_ascii=False))
        return
    for label, key in (("Reference", "reference"), ("State", "state"), ("Owner", "owner"), ("Due", "due_at"),
                       ("Flag", "flag"), ("Next step", "next_step"), ("Call", "call_sid"), ("Caller", "phone"),
                       ("Name", "caller_name"), ("Agent", "agent"), ("Summary", "summary"),
                       ("Flagged", "flagged_at"), ("Flagged by", "flagged_by"), ("Spoken on the call", "spoken_at"),
                       ("SMS", "sms"), ("Recording", "recording"), ("Recording file", "recording_path"),
                       ("Recording SHA-256", "recording_sha256"), ("What went wrong", "explanation"),
                       ("Remedy", "remedy"), ("Cause", "cause"), ("Resolved", "resolved_at"),
                       ("Told", "told_at"), ("Told via", "told_via"), ("Remedy accepted", "remedy_accepted"),
                       ("Verified", "verified_at"), ("Satisfied", "satisfied"), ("Customer said", "verdict_note"),
                       ("Closed", "closed_at"), ("Reopened", "reopened_count")):
        click.echo(f"{label + ':':<20} {_shown(record[key])}")
    click.echo("Trail:")
    for step in record["steps"]:
        click.echo(f"  {step['at']}  {step['what']:<9} {step['event']:<28} "
                   f"{json.dumps(step['detail'], ensure_ascii=False)}")


def _shown(value: object) -> object:
    if isinstance(value, bool):
        return yes_no(value)
    return "-" if value in (None, "") else value


def _by(identity: str) -> complaint_life.Actor:
    """The command line is the back office's: it acts as a supervisor, in the name given with --by."""
    return complaint_life.Actor(identity.strip() or BACK_OFFICE, supervisor=True)


def _step(take: Callable[[Services], dict[str, Any]]) -> dict[str, Any]:
    """One step of a complaint's life, under the same rules as the pages; a refusal is its reason and exit 1."""
    with services() as svc, refusing(ComplaintError):
        return take(svc)


def _customer_said(choice: str, meaning: str, who: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """REFERENCE, what the customer chose, their words and who heard them: the options of a step after a call."""
    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        options = [click.argument("reference"), click.option(choice, required=True, help=meaning),
                   click.option("--note", default="", help="The customer's words."),
                   click.option("--by", default=BACK_OFFICE, show_default=True, help=who)]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@complaints.command("assign")
@click.argument("reference")
@click.option("--to", "identity", required=True, help="The agent who will own it.")
@click.option("--reason", required=True, help="Why it changes hands (kept in the audit log).")
@click.option("--by", default=BACK_OFFICE, show_default=True, help="Who reassigns it.")
def complaints_assign(reference: str, identity: str, reason: str, by: str) -> None:
    """Give REFERENCE to another owner; the calls it is owed go to them too."""
    record = _step(lambda svc: complaint_life.assign(svc, reference, identity, reason, _by(by)))
    click.echo(f"{record['reference']} now owned by {record['owner']}")


@complaints.command("resolve")
@click.argument("reference")
@click.option("--explanation", required=True, help="What went wrong, in words for the customer.")
@click.option("--remedy", required=True, help="The remedy offered (refund, repair, compensation, explanation...).")
@click.option("--cause", required=True, help="The cause, in words for the team: a process, never a person.")
@click.option("--by", default=BACK_OFFICE, show_default=True, help="Who resolves it.")
def complaints_resolve(reference: str, explanation: str, remedy: str, cause: str, by: str) -> None:
    """Write REFERENCE's resolution; its owner is then owed a call to explain it to the customer."""
    record = _step(lambda svc: complaint_life.resolve(svc, reference, explanation=explanation, remedy=remedy,
                                                      cause=cause, by=_by(by)))
    click.echo(f"{record['reference']} resolved; next: {record['next_step']}")


@complaints.command("told")
@_customer_said("--accepted/--not-accepted", "Whether the customer accepts the remedy.", "Who told the customer.")
def complaints_told(reference: str, accepted: bool, note: str, by: str) -> None:
    """Record that the customer was told REFERENCE's resolution on a call, and whether they accept the remedy."""
    record = _step(lambda svc: complaint_life.record_answer(svc, reference, accepted=accepted, note=note, by=_by(by)))
    click.echo(f"{record['reference']} {record['state']}; next: {record['next_step']}")


@complaints.command("verify")
@_customer_said("--satisfied/--not-satisfied", "The customer's verdict on the remedy.", "Who asked the customer.")
def complaints_verify(reference: str, satisfied: bool, note: str, by: str) -> None:
    """Record the follow-up's verdict: satisfied closes REFERENCE, not satisfied reopens it with a new due date."""
    record = _step(lambda svc: complaint_life.verify(svc, reference, satisfied=satisfied, note=note, by=_by(by)))
    click.echo(f"{record['reference']} {record['state']}"
               + ("" if satisfied else f", back to {record['owner']}, due {day(record['due_at'])}"))


@complaints.command("sweep")
def complaints_sweep() -> None:
    """Queue what a lost job left undone: SMS neither delivered nor on their way, recordings not yet stored."""
    with services() as svc:
        queued = resume_pending(svc)
    click.echo(f"queued {queued} job(s)")


@click.group()
def audit() -> None:
    """The hash-chained audit log."""


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the chain; exit status 1 and the first bad entry when an entry was edited, removed or reordered."""
    with services() as svc, svc.db.session() as session:
        result = audit_log.verify(session)
    if not result.intact:
        raise click.ClickException(f"audit chain broken at entry {result.broken_at}: {result.problem} "
                                   f"({result.entries} entries before it are intact)")
    click.echo(f"audit chain intact: {result.entries} entries, head {result.head}")


@audit.command("list")
@click.option("--complaint", "reference", help="Only this complaint's entries (e.g. R-2026-000042).")
def audit_list(reference: str | None) -> None:
    """The entries in order, with their hashes."""
    with services() as svc, svc.db.session() as session:
        complaint_id = None
        if reference:
            complaint_id = session.scalar(select(Complaint.id).where(Complaint.reference == reference))
            if complaint_id is None:
                raise click.ClickException(f"no complaint {reference}")
        rows = [[e.id, e.at.isoformat(timespec="seconds"), e.event, e.payload, e.hash[:16]]
                for e in audit_log.entries(session, complaint_id)]
    table(["ID", "AT", "EVENT", "PAYLOAD", "HASH"], rows)
