"""`directo report`: the month's compliance figures, for supervisors and for whoever asks to see them."""

from __future__ import annotations

import json

import click

from directo.cli.common import services
from routing import compliance

LABELS = {
    "calls_received": "Calls received",
    "calls_reaching_a_person": "  reaching a person",
    "calls_reaching_a_person_within_3_minutes": "  within 3 minutes",
    "share_of_calls_reaching_a_person_within_3_minutes": "  share within 3 minutes (%)",
    "complaints_received": "Complaints received",
    "complaints_with_deadline_decided": "  told, or past their deadline",
    "complaints_resolved_within_deadline": "  resolved within the deadline",
    "share_of_complaints_resolved_within_deadline": "  share within the deadline (%)",
    "complaints_customer_told": "  customer told",
    "complaints_customer_told_by_sms": "  of them by SMS (not reachable)",
    "median_days_to_customer_told": "  median days to the customer told",
    "complaints_verified": "  verified",
    "complaints_satisfied_at_verification": "  satisfied at verification",
    "share_satisfied_at_verification": "  share satisfied (%)",
    "complaints_reopened": "  reopened",
    "complaints_open_past_deadline": "  still open past the deadline",
}


@click.command()
@click.option("--month", required=True, help="The month, as YYYY-MM (UTC).")
@click.option("--json", "as_json", is_flag=True, help="One key per figure.")
@click.option("--csv", "as_csv", is_flag=True, help="A header row of figure names and a row of values.")
def report(month: str, as_json: bool, as_csv: bool) -> None:
    """The compliance report of MONTH: calls reaching a person within 3 minutes, complaints resolved in time."""
    with services() as svc, svc.db.session() as session:
        try:
            figures = compliance.report(session, month)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--month") from error
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return
    if as_csv:
        click.echo(compliance.as_csv(figures), nl=False)
        return
    click.echo(f"Compliance report for {figures['month']} (as of {figures['generated_at']} UTC)")
    for key, label in LABELS.items():
        value = figures[key]
        click.echo(f"{label:<40} {'-' if value is None else value}")
