"""`directo complaints ...` and `directo audit ...`."""

from __future__ import annotations

import click


@click.group()
def complaints() -> None:
    """The complaints register."""


@click.group()
def audit() -> None:
    """The hash-chained audit log."""
