"""What every command shares: the server's own services, clear refusals, and one table printer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from directo.core.config import Config
from directo.core.services import Services


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
def refusing(*errors: type[Exception]) -> Iterator[None]:
    """A request the domain's rules refuse becomes its message and exit status 1, not a traceback."""
    try:
        yield
    except errors as error:
        raise click.ClickException(str(error)) from error


def table(header: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    for row in [header, *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def clock(iso: str | None) -> str:
    """The time of day of an ISO timestamp, as a table column."""
    return iso[11:19] if iso else "-"


def day(iso: str | None) -> str:
    """The date of an ISO timestamp, as a table column."""
    return iso[:10] if iso else "-"
