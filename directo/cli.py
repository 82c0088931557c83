"""The `directo` command: run the server, manage agents, read the call log."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Worker
from sqlalchemy import select
from sqlalchemy.orm import aliased

from directo import sweeper
from directo.config import Config
from directo.embedded_redis import EmbeddedRedis
from directo.models import Agent, Call
from directo.services import Services, resolve_redis_url
from directo.simulate.cli import simulate
from recordings import cli as complaints_cli
from routing import agents as agent_admin
from routing.callback_report import callback_report

WORKER_RETRY_SECONDS = 2


@contextmanager
def services() -> Iterator[Services]:
    """The same configuration as the server: the commands see what the webhooks see."""
    svc = Services.build(Config.from_env())
    svc.db.migrate()
    try:
        yield svc
    finally:
        svc.close()


@contextmanager
def agent_services() -> Iterator[Services]:
    """Services for an agent command: a request the agent rules refuse becomes a clear message and exit 1."""
    with services() as svc:
        try:
            yield svc
        except agent_admin.AgentError as error:
            raise click.ClickException(str(error)) from error


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Directo: a call center with no IVR. Every call goes straight to a person."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--web-workers", default=2, show_default=True, type=int, help="gunicorn worker processes.")
@click.option("--threads", default=64, show_default=True, type=int,
              help="Threads per web worker; each open agent page holds one.")
def run(host: str, port: int, web_workers: int, threads: int) -> None:
    """Run the web app (gunicorn) and an RQ worker, with a private Redis when REDIS_URL is not set."""
    config = Config.from_env()
    # A private Redis started for this run is stopped with it; one that was already running is left alone.
    private = None if config.redis_url else EmbeddedRedis(Path(config.data_dir) / "redis")
    if private is not None and private.running():
        private = None
    env = dict(os.environ)
    env.update(
        REDIS_URL=resolve_redis_url(config),
        DATABASE_URL=config.database_url,
        DIRECTO_DATA_DIR=config.data_dir,
        TWILIO_AUTH_TOKEN=config.twilio_auth_token,
        # Jobs build the URLs Twilio calls back on; on a laptop that is this server.
        PUBLIC_BASE_URL=config.public_base_url or f"http://{host}:{port}",
    )
    with services() as svc:
        agent_admin.restore_presence(svc)
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    web = subprocess.Popen(
        [gunicorn, "--bind", f"{host}:{port}", "--workers", str(web_workers), "--threads", str(threads),
         "--worker-class", "gthread", "--access-logfile", "-", "voice:create_app()"],
        env=env,
    )
    worker = subprocess.Popen([sys.executable, "-m", "directo.cli", "worker"], env=env)
    public = config.public_base_url or f"http://{host}:{port}"
    click.echo(
        f"Directo is up.\n"
        f"  Twilio voice webhook:   POST {public}/voice/incoming\n"
        f"  Twilio status callback: POST {public}/voice/status\n"
        f"  Redis:    {env['REDIS_URL']}\n"
        f"  Database: {config.database_url}\n"
        f"  Webhooks are checked against TWILIO_AUTH_TOKEN"
        f"{'' if os.environ.get('TWILIO_AUTH_TOKEN') else ' (a local one, in ' + config.data_dir + ')'}.\n"
        f"Stop with Ctrl-C."
    )

    def stop(*_: Any) -> None:
        for process in (web, worker):
            if process.poll() is None:
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while web.poll() is None and worker.poll() is None:
            try:
                web.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            if private is not None and not private.alive():
                # Killed or crashed: calls meanwhile ring every agent (the outage fallback); once it is back,
                # empty, the first call or sweep puts presence back from the database.
                click.echo("The private Redis stopped; starting it again.", err=True)
                try:
                    private.start()
                except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
                    click.echo(f"Could not start it yet ({error}); trying again.", err=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        for process in (web, worker):
            process.wait(timeout=30)
        if private is not None:
            private.stop()
    sys.exit(web.returncode or worker.returncode or 0)


@main.command()
@click.option("--burst", is_flag=True, help="Run the jobs queued now, then exit.")
def worker(burst: bool) -> None:
    """Run an RQ worker for Directo's jobs (callbacks, SMS, recordings), with its scheduler."""
    with services() as svc:
        if not burst:
            sweeper.start(svc)
        while True:
            try:
                Worker([svc.queue.name], connection=svc.blocking_redis()).work(burst=burst, with_scheduler=True)
                return
            except (RedisConnectionError, RedisTimeoutError) as error:
                # RQ rides out Redis outages while it waits for jobs, but not while it starts or restarts its
                # scheduler: a worker must outlive a Redis restart, so it starts over once Redis answers again.
                if burst:
                    raise
                click.echo(f"Redis is unreachable ({error}); the worker starts again in {WORKER_RETRY_SECONDS} s.",
                           err=True)
                time.sleep(WORKER_RETRY_SECONDS)


@main.command()
def migrate() -> None:
    """Create or upgrade the database schema (the other commands do it too when needed)."""
    with services():
        click.echo("database schema is up to date")


@main.group()
def agent() -> None:
    """Manage agents."""


@agent.command("add")
@click.argument("identity")
@click.option("--name", required=True, help="Full name, shown to supervisors.")
@click.option("--language", "languages", multiple=True, help="A language the agent speaks (repeat).")
@click.option("--phone", help="Reach the agent on this number instead of the softphone.")
@click.option("--role", type=click.Choice(agent_admin.ROLES), default="agent", show_default=True)
@click.option("--password", help="Password for the agent page (visible in shell history: prefer `agent password`).")
def agent_add(identity: str, name: str, languages: tuple[str, ...], phone: str | None, role: str,
              password: str | None) -> None:
    """Add an agent; without --phone they are reached as a softphone (Twilio Client) IDENTITY."""
    with agent_services() as svc:
        added = agent_admin.add_agent(svc, identity, name, list(languages), phone, role)
        if password is not None:
            agent_admin.set_password(svc, identity, password)
        reach = added.phone or f"client:{added.identity}"
        click.echo(f"added {added.identity} ({added.name}; {', '.join(added.languages)}; {reach}), offline")


@agent.command("status")
@click.argument("identity")
@click.argument("status", type=click.Choice(agent_admin.SETTABLE))
def agent_status(identity: str, status: str) -> None:
    """Set an agent available, away or offline."""
    with agent_services() as svc:
        agent_admin.set_status(svc, identity, status)
        click.echo(f"{identity} is {status}")


@agent.command("password")
@click.argument("identity")
@click.password_option(help="The new password (asked twice when not given).")
def agent_password(identity: str, password: str) -> None:
    """Set the password an agent logs in to the agent page with (stored hashed)."""
    with agent_services() as svc:
        agent_admin.set_password(svc, identity, password)
        click.echo(f"password set for {identity}")


@agent.command("list")
@click.option("--json", "as_json", is_flag=True)
def agent_list(as_json: bool) -> None:
    """Agents with their languages, live status and current call."""
    with services() as svc:
        views = agent_admin.list_agents(svc)
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
    _table(
        ["IDENTITY", "NAME", "LANGUAGES", "STATUS", "CALL", "IDLE SINCE"],
        [[r["identity"], r["name"], ",".join(r["languages"]), r["status"], r["call"] or "-",
          (r["idle_since"] or "-")[11:19] or "-"] for r in rows],
    )


@main.group()
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
    _table(
        ["CALL SID", "CALLER", "AGENT", "STARTED", "ANSWERED", "ENDED", "OUTCOME", "WAIT S"],
        [[r["call_sid"], r["caller"] or "withheld", r["agent"] or "-", _clock(r["started"]), _clock(r["answered"]),
          _clock(r["ended"]), r["outcome"] + (" (previous agent)" if r["previous_agent"] else ""),
          "-" if r["wait_seconds"] is None else f"{r['wait_seconds']:.1f}"] for r in records],
    )


@main.group()
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
    _table(
        ["ID", "CUSTOMER", "REASON", "QUEUED", "PROMISED BY", "TRIES", "STATE", "AGENT", "FLAG"],
        [[r["id"], r["customer"], "recorded" if r["reason_recording"] else "-", _clock(r["queued_at"]),
          _clock(r["promised_by"]), r["attempts"], r["state"], r["agent"] or "-", r["flag"] or ""] for r in records],
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


def _clock(iso: str | None) -> str:
    return iso[11:19] if iso else "-"


def _table(header: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


main.add_command(complaints_cli.complaints)
main.add_command(complaints_cli.audit)
main.add_command(simulate)

if __name__ == "__main__":
    main()
