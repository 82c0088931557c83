"""The `directo` command: run the server and its worker, manage agents, read the call log and the registers.

Each group lives in its own module; `directo simulate` (a development tool that carries the Twilio stand-in) is
loaded by its dotted path only when it runs, so the server and the worker never import it.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from directo.cli import agents, calls, complaints, customers, promises, report, server

# Commands loaded only when used: name -> "module:attribute".
LAZY = {"simulate": "directo.simulate.cli:simulate"}


class Directo(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY:
            module, attribute = LAZY[name].split(":")
            command: Any = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, name)


@click.group(cls=Directo, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Directo: a call center with no IVR. Every call goes straight to a person."""


for command in (server.run, server.worker, server.migrate, agents.agent, calls.calls, calls.callbacks,
                complaints.complaints, complaints.audit, report.report, customers.customers,
                promises.promises_group):
    main.add_command(command)

if __name__ == "__main__":
    main()
