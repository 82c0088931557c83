"""`directo calls ...` and `directo callbacks ...`: the call log and the promises, as supervisors read them."""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import select
from sqlalchemy.orm import aliased

from directo.cli.common import clock, services, table
from directo.core.models import Agent, Call
from routing.callback_report import callback_report


@click.group()
def calls() -> None:
    """The call log."""


@calls.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=50, show_default=True, type=int)
def calls_list(as_json: bool, limit: int) -> None:
    """Newest calls first: who called, who answered, when, how long they waited, how it ended."""
    with services() as svc, svc.db.session() as session:
        answered_by = aliased(Agent)
        rows = session.execute(
            select(Call, answered_by.identity)
            .outerjoin(answered_by, Call.agent_id == answered_by.id)
            .order_by(Call.started_at.desc(), Call.id.desc())
            .limit(limit)
        ).all()
        records = [_call_record(call, identity) for call, identity in rows]
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    table(
        ["CALL SID", "CALLER", "AGENT", "STARTED", "ANSWERED", "ENDED", "OUTCOME", "WAIT S"],
        [[r["call_sid"], r["caller"] or "withheld", r["agent"] or "-", clock(r["started"]), clock(r["answered"]),
          clock(r["ended"]), r["outcome"] + (" (previous agent)" if r["previous_agent"] else ""),
          "-" if r["wait_seconds"] is None else f"{r['wait_seconds']:.1f}"] for r in records],
    )


@click.group()
def callbacks() -> None:
    """The callback queue: every promise, kept or not."""


@callbacks.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--all", "everything", is_flag=True, help="Also the closed ones (done, missed, cancelled).")
def callbacks_list(as_json: bool, everything: bool) -> None:
    """Callbacks in queue order, with promises at risk or already late flagged."""
    with services() as svc:
        records = callback_report(svc, everything=everything)
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    table(
        ["ID", "CUSTOMER", "REASON", "QUEUED", "PROMISED BY", "TRIES", "STATE", "AGENT", "FLAG"],
        [[r["id"], r["customer"], "recorded" if r["reason_recording"] else "-", clock(r["queued_at"]),
          clock(r["promised_by"]), r["attempts"], r["state"], r["agent"] or "-", r["flag"] or ""] for r in records],
    )


def _call_record(call: Call, agent: str | None) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "call_sid": call.call_sid,
        "caller": call.caller,
        "from": call.from_raw,
        "language": call.language,
        "agent": agent,
        "previous_agent": call.routed_to_previous,
        "started": iso(call.started_at),
        "answered": iso(call.answered_at),
        "ended": iso(call.ended_at),
        "outcome": call.outcome,
        "wait_seconds": call.wait_seconds,
        "dial_attempts": call.dial_attempts,
    }
