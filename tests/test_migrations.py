"""The schema comes up once, however many processes start together on a new deployment."""

from __future__ import annotations

import subprocess
import sys
import time

from sqlalchemy import create_engine, text

from directo.db import fresh_database

# Each process imports first, then all migrate at the same instant, as web workers and a worker booting together.
START_TOGETHER = """
import sys, time
from directo.db import Database
url, at = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, at - time.time()))
Database(url).migrate()
"""


def test_processes_starting_together_on_a_new_database_all_come_up(database_url, tmp_path) -> None:
    """The Procfile's web workers and worker all migrate at start; on PostgreSQL they used to collide."""
    with fresh_database(database_url, tmp_path) as url:
        at = time.time() + 4
        starts = [subprocess.Popen([sys.executable, "-c", START_TOGETHER, url, str(at)], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True) for _ in range(4)]
        outputs = [start.communicate(timeout=120)[0] for start in starts]
        assert [start.returncode for start in starts] == [0] * 4, outputs
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        finally:
            engine.dispose()
