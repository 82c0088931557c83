"""`directo simulate`: drive a running server as Twilio would, and print what a supervisor wants to know."""

from __future__ import annotations

import json
import sys

import click

from directo.core.config import Config
from directo.core.services import Services

from .run import OUR_NUMBER, Options, Progress, Simulation
from .scenarios import SCENARIOS


def _progress_line(progress: Progress) -> None:
    step = max(1, progress.total // 20)
    if progress.done % step == 0 or progress.done == progress.total:
        click.echo(f"  [{progress.done:>4}/{progress.total}] answered by a person {progress.answered}, "
                   f"calls in progress {progress.in_flight}", err=True)


@click.command()
@click.option("--base-url", required=True, help="The running Directo server, e.g. http://127.0.0.1:5000.")
@click.option("--calls", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--agents", default=5, show_default=True, type=click.IntRange(min=1, max=99),
              help="Simulated agents sim-01.. (created when missing, set available).")
@click.option("--concurrency", type=click.IntRange(min=1),
              help="Most callers on the line at once [default: three per agent].")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True),
              help="New calls per real second [default: 80% of what the agents can handle].")
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed, same callers and behaviours.")
@click.option("--complaint-rate", default=0.05, show_default=True, type=click.FloatRange(0, 1),
              help="Share of conversations in which the agent flags a complaint.")
@click.option("--time-scale", default=0.02, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Real seconds per simulated second.")
@click.option("--twilio-port", default=5081, show_default=True, type=int,
              help="Port of the Twilio stand-in; start the server with TWILIO_API_BASE_URL=http://127.0.0.1:PORT.")
@click.option("--number", default=OUR_NUMBER, show_default=True, help="The number callers dial.")
@click.option("--settle", default=30.0, show_default=True, type=float,
              help="Real seconds to wait after the last call for callbacks and SMS.")
@click.option("--upstream", "upstreams", multiple=True, metavar="URL",
              help="A web process behind --base-url (repeat for each): webhooks are spread over them as a load "
                   "balancer would, signed over --base-url (the servers' PUBLIC_BASE_URL).")
@click.option("--scenario", type=click.Choice(sorted(SCENARIOS)), help="Run a scripted scenario instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def simulate(base_url: str, calls: int, agents: int, concurrency: int | None, rate: float | None, seed: int,
             complaint_rate: float, time_scale: float, twilio_port: int, number: str, settle: float,
             upstreams: tuple[str, ...], scenario: str | None, as_json: bool) -> None:
    """Run a simulated call-center day against a running Directo server, through a local Twilio stand-in."""
    svc = Services.build(Config.from_env())
    options = Options(base_url=base_url, calls=calls, agents=agents, concurrency=concurrency or 3 * agents, seed=seed,
                      complaint_rate=complaint_rate, time_scale=time_scale, twilio_port=twilio_port, number=number,
                      settle_seconds=settle, rate=rate, upstreams=upstreams)
    try:
        with Simulation(svc, options, on_progress=None if as_json else _progress_line) as simulation:
            if not as_json:
                click.echo(f"Twilio stand-in on {simulation.standin.base_url}; calling {base_url} "
                           f"({'scenario ' + scenario if scenario else f'{calls} calls, {agents} agents'})", err=True)
            if scenario:
                result = SCENARIOS[scenario](simulation)
                summary = result.summary
            else:
                result = None
                summary = simulation.run()
    except OSError as error:
        raise click.ClickException(f"cannot start the Twilio stand-in on port {twilio_port}: {error}") from error
    finally:
        svc.close()
    if as_json:
        payload = summary.as_dict()
        if result is not None:
            payload["scenario"] = result.as_dict()
        click.echo(json.dumps(payload, indent=2, default=str))
    else:
        if result is not None:
            click.echo(result.text())
        click.echo(summary.text())
    failed = bool(summary.violations) or (result is not None and not result.passed)
    sys.exit(1 if failed else 0)
