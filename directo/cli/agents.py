"""`directo agent ...`: who works here, and how they are reached."""

from __future__ import annotations

import json

import click

from directo.cli.common import refusing, services, table
from directo.core.states import SETTABLE, Role
from routing import agents, roster
from routing.errors import Refused


@click.group()
def agent() -> None:
    """Manage agents."""


@agent.command("add")
@click.argument("identity")
@click.option("--name", required=True, help="Full name, shown to supervisors.")
@click.option("--language", "languages", multiple=True, help="A language the agent speaks (repeat).")
@click.option("--phone", help="Reach the agent on this number instead of the softphone.")
@click.option("--role", type=click.Choice([role.value for role in Role]), default=Role.AGENT.value, show_default=True)
@click.option("--password", help="Password for the agent page (visible in shell history: prefer `agent password`).")
def agent_add(identity: str, name: str, languages: tuple[str, ...], phone: str | None, role: str,
              password: str | None) -> None:
    """Add an agent; without --phone they are reached as a softphone (Twilio Client) IDENTITY."""
    with services() as svc, refusing(Refused):
        added = roster.add_agent(svc, identity, name, list(languages), phone, role, password)
        reach = added.phone or f"client:{added.identity}"
        click.echo(f"added {added.identity} ({added.name}; {', '.join(added.languages)}; {reach}), offline")


@agent.command("status")
@click.argument("identity")
@click.argument("status", type=click.Choice([status.value for status in SETTABLE]))
def agent_status(identity: str, status: str) -> None:
    """Set an agent available, away or offline."""
    with services() as svc, refusing(Refused):
        agents.set_status(svc, identity, status)
        click.echo(f"{identity} is {status}")


@agent.command("password")
@click.argument("identity")
@click.password_option(help="The new password (asked twice when not given).")
def agent_password(identity: str, password: str) -> None:
    """Set the password an agent logs in to the agent page with (stored hashed)."""
    with services() as svc, refusing(Refused):
        roster.set_password(svc, identity, password)
        click.echo(f"password set for {identity}")


@agent.command("list")
@click.option("--json", "as_json", is_flag=True)
def agent_list(as_json: bool) -> None:
    """Agents with their languages, live status and current call."""
    with services() as svc:
        views = roster.list_agents(svc)
    rows = [
        {
            "identity": v.identity,
            "name": v.name,
            "languages": v.languages,
            "phone": v.phone,
            "status": v.status,
            "call": v.call,
            "idle_since": v.idle_since.isoformat(timespec="seconds") if v.idle_since else None,
        }
        for v in views
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table(
        ["IDENTITY", "NAME", "LANGUAGES", "STATUS", "CALL", "IDLE SINCE"],
        [[r["identity"], r["name"], ",".join(r["languages"]), r["status"], r["call"] or "-",
          (r["idle_since"] or "-")[11:19] or "-"] for r in rows],
    )
