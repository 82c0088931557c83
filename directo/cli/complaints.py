"""`directo complaints ...` and `directo audit ...`."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import select

from directo.cli.common import services, table
from directo.core.models import Call, Complaint
from recordings import audit as audit_log
from recordings import sms
from recordings.complaints import flag
from recordings.errors import ComplaintError
from recordings.jobs import resume_pending


@click.group()
def complaints() -> None:
    """The complaints register."""


@complaints.command("flag")
@click.argument("call_sid")
@click.option("--by", "flagged_by", default="back-office", show_default=True,
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
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=50, show_default=True, type=int)
def complaints_list(as_json: bool, limit: int) -> None:
    """Newest first: reference, caller, whether it was spoken, the SMS state and the recording state."""
    with services() as svc, svc.db.session() as session:
        rows = session.execute(
            select(Complaint, Call.call_sid).join(Call, Complaint.call_id == Call.id)
            .order_by(Complaint.id.desc()).limit(limit)
        ).all()
        records = [_record(complaint, sid) for complaint, sid in rows]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    table(["REFERENCE", "CALL SID", "CALLER", "FLAGGED BY", "SPOKEN", "SMS", "RECORDING"],
           [[r["reference"], r["call_sid"], r["phone"] or "withheld", r["flagged_by"], "yes" if r["spoken"] else "no",
             r["sms"] or "-", r["recording"] or "-"] for r in records])


def _record(complaint: Complaint, call_sid: str) -> dict[str, Any]:
    recording = complaint.recording
    return {
        "reference": complaint.reference,
        "call_sid": call_sid,
        "phone": complaint.phone,
        "language": complaint.language,
        "summary": complaint.summary,
        "flagged_by": complaint.flagged_by,
        "flagged_at": complaint.flagged_at.isoformat(),
        "spoken": complaint.spoken_at is not None,
        "sms": complaint.reference_texts[-1].state if complaint.reference_texts else None,
        "sms_messages": len(complaint.reference_texts),
        "recording": recording.state if recording else None,
        "recording_sha256": recording.sha256 if recording else None,
    }


@complaints.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True)
def complaints_show(reference: str, as_json: bool) -> None:
    """One complaint with its whole trail: caller, agent, summary, times, SMS, recording and audit events."""
    with services() as svc, svc.db.session() as session:
        row = session.execute(
            select(Complaint, Call.call_sid).join(Call, Complaint.call_id == Call.id)
            .where(Complaint.reference == reference)
        ).first()
        if row is None:
            raise click.ClickException(f"no complaint {reference}")
        complaint, call_sid = row
        record = _record(complaint, call_sid)
        recording = complaint.recording
        record.update(
            caller_name=complaint.customer.name if complaint.customer else None,
            agent=complaint.agent.identity if complaint.agent else None,
            spoken_at=complaint.spoken_at.isoformat() if complaint.spoken_at else None,
            messages=[{"topic": m.topic, "sid": m.message_sid, "state": m.state, "attempts": m.attempts,
                       "error": m.last_error, "updated_at": m.updated_at.isoformat()} for m in complaint.messages],
            recording_path=recording.path if recording else None,
            recording_format=recording.format if recording else None,
            recording_duration_ms=recording.duration_ms if recording else None,
            trail=[{"at": e.at.isoformat(timespec="seconds"), "event": e.event, "payload": json.loads(e.payload),
                    "hash": e.hash} for e in audit_log.entries(session, complaint.id)],
        )
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    for label, key in (("Reference", "reference"), ("Call", "call_sid"), ("Caller", "phone"),
                       ("Name", "caller_name"), ("Agent", "agent"), ("Summary", "summary"),
                       ("Flagged", "flagged_at"), ("Flagged by", "flagged_by"), ("Spoken on the call", "spoken_at"),
                       ("SMS", "sms"), ("Recording", "recording"), ("Recording file", "recording_path"),
                       ("Recording SHA-256", "recording_sha256")):
        click.echo(f"{label + ':':<20} {record[key] if record[key] not in (None, '') else '-'}")
    click.echo("Trail:")
    for entry in record["trail"]:
        click.echo(f"  {entry['at']}  {entry['event']:<24} {json.dumps(entry['payload'], ensure_ascii=False)}")


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
