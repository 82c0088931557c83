"""The schema comes up once, however many processes start together on a new deployment."""

from __future__ import annotations

from conftest import run_together, schema_versions

from directo.core.db import fresh_database


def test_processes_starting_together_on_a_new_database_all_come_up(database_url, tmp_path) -> None:
    """The Procfile's web workers and worker all migrate at start; on PostgreSQL they used to collide."""
    with fresh_database(database_url, tmp_path) as url:
        run_together("import sys\nfrom directo.core.db import Database", "Database(sys.argv[1]).migrate()", url)
        assert schema_versions(url) == 1
