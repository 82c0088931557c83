"""`directo promises ...`: dated promises made to customers, and how each agent keeps theirs, day by day."""

from __future__ import annotations

import json

import click
from sqlalchemy import select

from directo.cli.common import services, table
from directo.core.models import Agent, Call
from recordings import sms
from routing.errors import Refused
from routing.promise_report import by_agent_and_day, promises
from routing.promises import promise


@click.group("promises")
def promises_group() -> None:
    """Promises with a date: "I will call you on Thursday at 10:00 about the refund"."""


@promises_group.command("add")
@click.argument("call_sid")
@click.option("--at", "at", required=True, help="When, ISO 8601 (2026-03-12T10:00 is on the center's clock).")
@click.option("--about", required=True, help="What the call will be about (on the agent's screen and in the SMS).")
@click.option("--by", help="The agent who promises and owns it [default: the call's agent].")
def promises_add(call_sid: str, at: str, about: str, by: str | None) -> None:
    """Promise, on CALL_SID, to call its customer at a date and time; the customer is texted the date."""
    with services() as svc:
        if by is None:
            with svc.db.session() as session:
                by = session.scalar(select(Agent.identity).join(Call, Call.agent_id == Agent.id)
                                    .where(Call.call_sid == call_sid))
            if by is None:
                raise click.ClickException(f"no agent on call {call_sid}: say who owns the promise with --by")
        try:
            made = promise(svc, call_sid, at, about, by, on_any_call=True, status_url=sms.status_url(svc))
        except Refused as refused:
            raise click.ClickException(str(refused)) from refused
    state = "promised" if made.created else "already promised"
    click.echo(f"promise {made.callback_id} {state}: {made.owner} calls on {made.words} about {about!r}; "
               f"{'the SMS is queued' if made.created else 'no second SMS'}")


@promises_group.command("list")
@click.option("--all", "everything", is_flag=True, help="Every promise ever made, not only today's and waiting.")
@click.option("--json", "as_json", is_flag=True)
def promises_list(everything: bool, as_json: bool) -> None:
    """Promises due today and still waiting (or all), then per agent and per day: kept on time, late, missed,
    and how many their owner missed (another agent kept them after the grace window)."""
    with services() as svc, svc.db.session() as session:
        rows = promises(session, svc.config, everything=everything)
        zone = svc.config.time_zone
    summary = by_agent_and_day(rows)
    if as_json:
        click.echo(json.dumps({"time_zone": zone, "promises": rows, "by_agent_and_day": summary}, indent=2,
                              ensure_ascii=False))
        return
    click.echo(f"Promises ({zone}):")
    table(["ID", "DUE", "CUSTOMER", "OWNER", "ABOUT", "STATE", "STANDING", "TAKEN BY", "SMS"],
          [[r["id"], r["due_local"], r["customer"], r["owner"] or "-", (r["about"] or "")[:40], r["state"],
            r["standing"], (r["agent"] or "-") + (" (owner missed)" if r["owner_missed"] else ""), r["sms"] or "-"]
           for r in rows] or [["-"] * 9])
    click.echo("\nPer agent and day:")
    table(["DAY", "OWNER", "ON TIME", "LATE", "MISSED", "WAITING", "CANCELLED", "OWNER MISSED"],
          [[s["day"], s["owner"], s["on time"], s["late"], s["missed"], s["waiting"], s["cancelled"],
            s["owner_missed"]] for s in summary] or [["-"] * 8])
