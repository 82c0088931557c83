"""`directo customers ...`: what we remember of a customer, corrections to it, and forgetting them on request."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import click

from directo.cli.common import services, table
from directo.core.services import Services
from directo.core.unit_of_work import work
from routing import customers as profiles
from routing import memory
from routing.directory import lookup, normalise_number
from routing.errors import Refused
from routing.forgetting import forget


@click.group()
def customers() -> None:
    """Customers: their profile, history and what we owe them."""


def _number(svc: Services, number: str) -> str:
    phone = normalise_number(number, svc.config.default_region)
    if phone is None:
        raise click.ClickException(f"{number!r} is not a phone number")
    return phone


def _local(svc: Services, at: Any) -> str:
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    return f"{svc.config.hours.local(at):%Y-%m-%d %H:%M}" if at else "-"


@customers.command("show")
@click.argument("number")
@click.option("--json", "as_json", is_flag=True)
@click.option("--limit", default=memory.RECENT_CONTACTS, show_default=True, type=click.IntRange(min=1),
              help="How many of the last contacts.")
def customers_show(number: str, as_json: bool, limit: int) -> None:
    """NUMBER's profile, standing notes, last contacts, open promises and open complaints."""
    with services() as svc, svc.db.session() as session:
        customer = memory.by_number(session, _number(svc, number))
        if customer is None:
            raise click.ClickException(f"no customer with number {number}")
        record = memory.remember(session, customer, limit=limit)
        record["changes"] = memory.changes(session, customer.id)
        if as_json:
            click.echo(json.dumps(memory.jsonable(record), indent=2, ensure_ascii=False))
            return
        _print(svc, record)


def _print(svc: Services, record: dict[str, Any]) -> None:
    p = record["profile"]
    hint = f"  (say it: {p['say_as']})" if p["say_as"] else ""
    click.echo(f"Customer {p['id']}: {p['name'] or '(no name)'}{hint}")
    click.echo(f"Number: {p['number']}   Language: {p['language'] or '-'}   Profile revision: {p['revision']}")
    click.echo(f"Standing notes: {p['notes'] or '-'}")
    if p["changed"]:
        click.echo(f"  last changed by {p['changed']['by']} at {_local(svc, p['changed']['at'])}")
    click.echo(f"\nWhat we owe them ({svc.config.time_zone}):")
    table(["ID", "KIND", "DUE", "OWNER", "STATE", "ABOUT"],
          [[o["id"], o["kind"], _local(svc, o["due_at"]), (o["owner"] or {}).get("identity", "-"), o["state"],
            o["about"] or o["complaint"] or "-"] for o in record["owed"]] or [["-", "", "", "", "", ""]])
    click.echo("\nOpen complaints:")
    for complaint in record["open_complaints"] or [{"reference": "-", "summary": ""}]:
        click.echo(f"  {complaint['reference']}  {complaint['summary']}")
    click.echo("\nLast contacts, newest first:")
    table(["WHEN", "KIND", "AGENT", "OUTCOME", "NOTES"],
          [[_local(svc, c["started_at"]), c["kind"] + (f" {c['complaint']}" if c["complaint"] else ""),
            c["agent_identity"] or "-", c["outcome"], " ".join(c["notes"].split())[:60] or "-"]
           for c in record["contacts"]] or [["-", "", "", "", ""]])


@customers.command("set")
@click.argument("number")
@click.option("--name", help="The name exactly as the customer gives it (any script, accents kept).")
@click.option("--say-as", "say_as", help="How to say the name.")
@click.option("--language", type=click.Choice(["es", "en"]), help="The language they are called and spoken to in.")
@click.option("--note", "notes", help="The standing notes (replace them; '' clears them).")
@click.option("--by", default="back-office", show_default=True, help="Who makes the change (kept with it).")
def customers_set(number: str, name: str | None, say_as: str | None, language: str | None, notes: str | None,
                  by: str) -> None:
    """Correct NUMBER's profile; a number that never called becomes a customer. Every change is kept."""
    wanted = {key: value for key, value in (("name", name), ("say_as", say_as), ("language", language),
                                            ("notes", notes)) if value is not None}
    if not wanted:
        raise click.ClickException("nothing to change: give --name, --say-as, --language or --note")
    with services() as svc:
        phone = _number(svc, number)
        try:
            with work(svc.db) as unit:
                caller = lookup(unit.session, phone, svc.config.default_language)
                assert caller.customer_id is not None
                changed = profiles.change(unit.session, caller.customer_id, wanted, by, unit.now)
        except Refused as refused:
            raise click.ClickException(str(refused)) from refused
    if changed.fields:
        click.echo(f"customer {phone}: {', '.join(changed.fields)} changed by {by} (revision {changed.revision})")
    else:
        click.echo(f"customer {phone}: nothing changed (already so)")


@customers.command("forget")
@click.argument("number")
@click.option("--by", default="back-office", show_default=True, help="Who asks (kept in the audit log).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True)
def customers_forget(number: str, by: str, yes: bool, as_json: bool) -> None:
    """Forget NUMBER on their request: name, pronunciation, notes and call notes go, the number becomes a token;
    complaint proof stays. Audited. Says exactly what it removed and what it kept, and why."""
    with services() as svc:
        phone = _number(svc, number)
        if not yes:
            click.confirm(f"Forget the customer {phone}? This cannot be undone", abort=True)
        try:
            report = forget(svc, phone, by)
        except Refused as refused:
            raise click.ClickException(str(refused)) from refused
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(f"Forgot customer {report.customer_id}, {phone}, now known as {report.token}.")
    click.echo("Removed:")
    for line in report.removed:
        click.echo(f"  - {line}")
    click.echo("Kept, and why:")
    for line in report.kept:
        click.echo(f"  - {line}")
    click.echo(f"Audited: entry customer-forgotten, hash {report.audit_hash[:16]}… (`directo audit verify` checks "
               "the chain)")
