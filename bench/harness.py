"""What every benchmark needs: a private Redis and a fresh database, and percentiles."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP))

from sqlalchemy import create_engine, make_url, text  # noqa: E402

from directo.config import Config  # noqa: E402
from directo.embedded_redis import EmbeddedRedis  # noqa: E402
from directo.services import Services  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@contextmanager
def fresh_database(server_url: str, workdir: Path) -> Iterator[str]:
    """A new, empty database for one run: a throwaway database on the PostgreSQL server given, else a SQLite file.

    Each run must start empty (figures from a database left full by an earlier run are not comparable), and a
    URL someone passes must never have its own data touched, so PostgreSQL gets a database of its own, dropped after.
    """
    url = make_url(server_url or "sqlite://")
    if url.get_backend_name() != "postgresql":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    name = f"directo_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def private_stack(database_url: str = "", **env: str) -> Iterator[tuple[Services, dict[str, str]]]:
    """Services on a private Redis and a fresh database (SQLite, or one on the PostgreSQL server given)."""
    workdir = Path(tempfile.mkdtemp(prefix="directo-bench-"))
    redis = EmbeddedRedis(workdir / "redis")
    with fresh_database(database_url, workdir) as url:
        environment = dict(os.environ, REDIS_URL=redis.start(), DIRECTO_DATA_DIR=str(workdir), DATABASE_URL=url,
                           **env)
        svc = Services.build(Config.from_env(environment))
        svc.db.migrate()
        try:
            yield svc, environment
        finally:
            svc.close()
            redis.stop()
