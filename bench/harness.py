"""What every benchmark needs: a private Redis and a fresh database, and percentiles."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP))

import requests  # noqa: E402
from sqlalchemy import text  # noqa: E402

from directo.core.config import Config  # noqa: E402
from directo.core.db import Database, fresh_database  # noqa: E402
from directo.core.embedded_redis import EmbeddedRedis  # noqa: E402
from directo.core.models import Base  # noqa: E402
from directo.core.services import Services  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def migrated_from_nothing(url: str) -> Database:
    """The database at `url`, its tables dropped and migrated again, so a rerun of a seeding bench starts from
    nothing (SQLite always gets a fresh file)."""
    db = Database(url)
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:
            for table in [*Base.metadata.tables, "alembic_version"]:
                connection.execute(text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    db.migrate()
    return db


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


def wait_until_up(base: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(base + "/health", timeout=1)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def gunicorn(app: str, port: int, env: dict[str, str]) -> Iterator[str]:
    """`app` served as `directo run` serves the real one (gunicorn with voice/gunicorn_conf.py, 2 workers): its URL
    once it answers."""
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "python:voice.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--log-level", "warning", app], cwd=TOP, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
