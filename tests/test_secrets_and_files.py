"""No output shows a password or a media token, and the files holding customers' data and secrets are the server
user's alone (directories 0700, files 0600), however loose an older version left them."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import make_url
from test_run import _free_port, directo_run

from directo.core.config import Config, redacted
from directo.core.db import fresh_database
from directo.core.embedded_redis import redis_executable
from directo.core.media_links import token
from directo.core.services import Services
from recordings.storage import LocalStorage

REDIS_PASSWORD = "redis-Pa55word-never-shown"
DATABASE_PASSWORD = "db-Pa55word-never-shown"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@given(password=st.text(min_size=6, max_size=40), url=st.sampled_from([
    "redis://:{p}@redis.example.net:6379/0", "redis://directo:{p}@redis.example.net/2",
    "rediss://default:{p}@redis.example.net:6380/0?ssl_cert_reqs=required", "unix://:{p}@/var/run/redis.sock?db=0",
    "redis://redis.example.net/0?password={p}&db=1", "redis+sentinel://:{p}@s1:26379,s2:26379/main/0",
    "postgresql+psycopg://directo:{p}@db.example.net:5432/directo", "postgres://u:{p}@db.example.net/x?sslmode=require"]))
def test_redacted_urls_never_carry_the_password(password: str, url: str) -> None:
    quoted = quote(password, safe="")
    shown = redacted(url.format(p=quoted))
    assert quoted not in shown and "***" in shown
    assert "example.net" in shown or "redis.sock" in shown or "s1:26379" in shown, "where it points is still said"


def test_urls_without_a_password_are_left_as_they_are() -> None:
    for url in ("unix:///home/you/var/redis/redis.sock", "sqlite:////home/you/var/directo.db", "redis://h:6379/0"):
        assert redacted(url) == url


@pytest.fixture
def redis_with_password(tmp_path: Path):
    port = _free_port()
    server = subprocess.Popen([redis_executable(), "--port", str(port), "--requirepass", REDIS_PASSWORD, "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    import redis

    while True:
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.RedisError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.1)
    yield url
    server.terminate()
    server.wait(timeout=10)


def _with_password(url: str) -> str:
    return make_url(url).set(password=DATABASE_PASSWORD).render_as_string(hide_password=False)


def test_directo_run_shows_no_password_and_no_media_token_and_keeps_its_files_private(
        redis_with_password, database_url, tmp_path) -> None:
    data = tmp_path / "var"
    (data / "recordings").mkdir(parents=True)
    for directory in (data, data / "recordings"):
        directory.chmod(0o755)  # as an older version left them
    with fresh_database(database_url, tmp_path) as fresh:
        sqlite = fresh.startswith("sqlite")
        env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "PUBLIC_BASE_URL")}
        env.update(DIRECTO_DATA_DIR=str(data), REDIS_URL=redis_with_password, TWILIO_AUTH_TOKEN="run-secret-token")
        if sqlite:
            (data / "directo.db").touch(mode=0o644)
        else:  # PostgreSQL here lets the local user in whatever the password: enough to see it never printed
            env["DATABASE_URL"] = _with_password(fresh)
        output = tmp_path / "run.log"
        with directo_run(env, output) as run:
            base = run.base
            expires = int(time.time()) + 600
            secret = token("whatever", 1, expires)
            assert requests.get(f"{base}/media/recordings/1/{expires}/{secret}", timeout=5).status_code == 404
            time.sleep(2)  # the worker starts, the access log is written
    printed = output.read_text()
    assert "Directo is up." in printed and "Redis:    redis://:***@127.0.0.1" in printed, printed
    for secret_text in (REDIS_PASSWORD, DATABASE_PASSWORD, secret):
        assert secret_text not in printed, f"{secret_text} was printed"
    assert f"/media/recordings/1/{expires}/[redacted]" in printed, "the access log still says what was asked"
    assert mode(data) == 0o700 and mode(data / "recordings") == 0o700
    assert mode(data / "secret_key") == 0o600
    if sqlite:
        assert mode(data / "directo.db") == 0o600
        assert all(mode(companion) == 0o600 for companion in data.glob("directo.db-*"))


def test_recordings_and_a_new_database_are_created_private(tmp_path: Path, redis_url: str) -> None:
    stored = LocalStorage(tmp_path / "recordings").put(b"RIFF a customer's voice", "wav")
    path = Path(stored.path)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700 and mode(tmp_path / "recordings") == 0o700
    data = tmp_path / "fresh" / "var"
    services = Services.build(Config.from_env({"DIRECTO_DATA_DIR": str(data), "REDIS_URL": redis_url}))
    try:
        services.db.migrate()
    finally:
        services.close()
    assert mode(data) == 0o700 and mode(data / "directo.db") == 0o600
    assert mode(data / "twilio_auth_token") == 0o600 and mode(data / "secret_key") == 0o600


def test_an_existing_database_file_is_only_tightened_never_opened(tmp_path: Path, monkeypatch) -> None:
    """Opening and closing a SQLite file would drop this process's locks on it under its live connections (the
    suite saw 'disk I/O error' when a second app started on the database of a first): chmod only."""
    from directo.core import private_files

    existing = tmp_path / "directo.db"
    existing.write_bytes(b"")
    existing.chmod(0o644)

    real_open = os.open

    def create_only(path: object, flags: int, *args: object) -> int:
        assert flags & os.O_EXCL, f"{path} opened as it is"  # O_EXCL fails on an existing file: no descriptor
        return real_open(path, flags, *args)

    monkeypatch.setattr(private_files.os, "open", create_only)
    private_files.private_file(existing)
    assert mode(existing) == 0o600
