"""What every benchmark needs: a private Redis and a fresh database, and percentiles."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOP))

from directo.core.config import Config  # noqa: E402
from directo.core.db import fresh_database  # noqa: E402
from directo.core.embedded_redis import EmbeddedRedis  # noqa: E402
from directo.core.services import Services  # noqa: E402


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


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
