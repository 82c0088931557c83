"""Database engine, sessions and schema migrations (Alembic), shared by the web app, workers and CLI."""

from __future__ import annotations

import fcntl
import threading
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from directo.core.private_files import FILE_MODE, private_directory, private_file, tighten

MIGRATIONS = Path(__file__).with_name("migrations")
_READ_ONLY = "directo_read_only"


POOL_SIZE = 10
MAX_OVERFLOW = 20


def make_engine(url: str, *, pooler: bool = False, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW
                ) -> Engine:
    """SQLite gets WAL and a busy timeout so concurrent webhooks queue for the write lock instead of failing.

    Behind a pooler in transaction mode (`pooler`) each transaction may run on another server connection, where a
    statement psycopg prepared on the last one does not exist: psycopg then prepares none (prepare_threshold).
    """
    if url.startswith("sqlite"):
        path = make_url(url).database  # None or ":memory:" for a database in memory
        if path and path != ":memory:":
            # Password hashes, customers' numbers and notes: the owner's alone. SQLite gives the -wal and -shm
            # files the database file's own mode.
            database = Path(path)
            if not database.parent.exists():
                private_directory(database.parent)
            private_file(database)
            for companion in ("-wal", "-shm"):
                tighten(Path(path + companion), FILE_MODE)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy issues BEGIN itself, below
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Writers take the write lock at BEGIN: upgrading a read lock later deadlocks concurrent writers.
            # Readers (Database.reading) begin deferred, so they never wait for, nor hold up, a writer.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(_READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True,
                         connect_args={"prepare_threshold": None} if pooler else {})


def insert_or_ignore(dialect: str, model: type[Any]) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING, which SQLite and PostgreSQL both spell this way."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model).on_conflict_do_nothing()


MIGRATION_LOCK = int.from_bytes(b"directo", "big")  # any constant bigint, the same in every process


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe to call at every start.

    Web and worker processes start together on a new deployment: one migrates while the others wait, then find
    the schema done. PostgreSQL: an advisory lock. SQLite: a lock file beside the database, taken before the first
    connection, because that connection switches a new file to WAL, which concurrent first connections cannot do.
    """
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with _sqlite_file_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


class Database:
    """One engine and session factory per process, built from the configuration.

    `direct_url`, when it differs from `url`, is PostgreSQL itself while `url` goes through a pooler in transaction
    mode (PgBouncer): migrations, which hold a lock for their whole run, take a connection of their own there.
    """

    def __init__(self, url: str, direct_url: str | None = None, pool_size: int = POOL_SIZE,
                 max_overflow: int = MAX_OVERFLOW) -> None:
        self.url = url
        self.direct_url = direct_url or url
        self.engine = make_engine(url, pooler=self.direct_url != url, pool_size=pool_size, max_overflow=max_overflow)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time, and a writer that finds the lock taken sleeps in steps of up to
        # 100 ms. Threads of one process queue here instead, and are woken the moment the writer before
        # them commits; other processes still meet SQLite's own lock.
        self._writer: AbstractContextManager[object] = (
            threading.RLock() if self.engine.dialect.name == "sqlite" else nullcontext()
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        with self._writer, self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read-only transaction that takes no write lock: for lookups done before a short write."""
        with self.engine.connect().execution_options(**{_READ_ONLY: True}) as connection, connection.begin():
            yield connection

    def migrate(self) -> None:
        if self.direct_url == self.url:
            migrate(self.engine)
            return
        direct = make_engine(self.direct_url, pool_size=1, max_overflow=0)
        try:
            migrate(direct)
        finally:
            direct.dispose()

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def fresh_database(server_url: str, workdir: Path) -> Iterator[str]:
    """A new, empty database for a benchmark or test: a throwaway one on the PostgreSQL server of `server_url`
    (dropped afterwards), else a SQLite file in `workdir`.

    Runs that must start empty never touch the data of a URL someone passed: they get a database of their own.
    """
    url = make_url(server_url or "sqlite://")
    if url.get_backend_name() != "postgresql":
        yield f"sqlite:///{workdir / 'fresh.db'}"
        return
    name = f"directo_scratch_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
