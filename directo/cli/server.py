"""`directo run`, `directo worker` and `directo migrate`: the processes that serve calls."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Worker

from directo.cli.common import services
from directo.core import periodic
from directo.core.config import Config, redacted
from directo.core.embedded_redis import EmbeddedRedis
from directo.core.services import resolve_redis_url
from routing import agents

WORKER_RETRY_SECONDS = 2
# What web processes and the worker get to stop in, once asked: then they are killed. The web processes end their
# live pages at once and give requests in progress 4 s (voice/gunicorn_conf.py).
STOP_SECONDS = 4.5


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--web-workers", default=2, show_default=True, type=int,
              help="Web processes (gunicorn workers); each serves webhooks, pages and ~1,000 open live pages.")
def run(host: str, port: int, web_workers: int) -> None:
    """Run the web app (gunicorn) and an RQ worker, with a private Redis when REDIS_URL is not set."""
    config = Config.from_env()
    if not config.public_base_url and reachable_from_elsewhere(host):
        raise click.UsageError(
            f"--host {host} accepts connections from other machines, so Directo must know the URL Twilio and the "
            f"agents use: set PUBLIC_BASE_URL (e.g. PUBLIC_BASE_URL=https://cc.example.com, served over TLS), and "
            f"TRUSTED_PROXIES=1 if a reverse proxy in front sets X-Forwarded-For/-Proto/-Host. Without them, "
            f"webhook signatures would be checked against whatever Host a request names.")
    # A private Redis started for this run is stopped with it; one that was already running is left alone.
    private = None if config.redis_url else EmbeddedRedis(Path(config.data_dir) / "redis")
    if private is not None and private.running():
        private = None
    env = dict(os.environ)
    env.update(
        REDIS_URL=resolve_redis_url(config),
        DATABASE_URL=config.database_url,
        DIRECTO_DATA_DIR=config.data_dir,
        TWILIO_AUTH_TOKEN=config.twilio_auth_token,
        # Jobs build the URLs Twilio calls back on; on a laptop that is this server.
        PUBLIC_BASE_URL=config.public_base_url or f"http://{host}:{port}",
    )
    with services() as svc:
        agents.restore_presence(svc)
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    # The web processes' settings (voice/gunicorn_conf.py, shared with the Procfile): webhooks, pages and live
    # pages each on capacity of their own, live pages told to end the moment the server stops.
    # Each in a process group of its own, so that one that does not stop when asked goes with all it started.
    web = subprocess.Popen(
        [gunicorn, "--config", "python:voice.gunicorn_conf", "--bind", f"{host}:{port}", "--workers",
         str(web_workers), "--access-logfile", "-"],
        env=env, start_new_session=True,
    )
    worker = subprocess.Popen([sys.executable, "-m", "directo.cli", "worker"], env=env, start_new_session=True)
    public = config.public_base_url or f"http://{host}:{port}"
    click.echo(
        f"Directo is up.\n"
        f"  Twilio voice webhook:   POST {public}/voice/incoming\n"
        f"  Twilio status callback: POST {public}/voice/status\n"
        f"  Redis:    {redacted(env['REDIS_URL'])}\n"
        f"  Database: {redacted(config.database_url)}\n"
        f"  Webhooks are checked against TWILIO_AUTH_TOKEN"
        f"{'' if os.environ.get('TWILIO_AUTH_TOKEN') else ' (a local one, in ' + config.data_dir + ')'}.\n"
        f"Stop with Ctrl-C."
    )

    def stop(*_: Any) -> None:
        for process in (web, worker):
            if process.poll() is None:
                process.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while web.poll() is None and worker.poll() is None:
            try:
                web.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
            if private is not None and not private.alive():
                # Killed or crashed: calls meanwhile ring every agent (the outage fallback); once it is back,
                # empty, the first call or sweep puts presence back from the database.
                click.echo("The private Redis stopped; starting it again.", err=True)
                try:
                    private.start()
                except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
                    click.echo(f"Could not start it yet ({error}); trying again.", err=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
        _reap({"the web processes": web, "the worker": worker}, time.monotonic() + STOP_SECONDS)
        if private is not None:
            private.stop()
    sys.exit(web.returncode or worker.returncode or 0)


def reachable_from_elsewhere(host: str) -> bool:
    """Anything but a loopback address (a name may resolve to anything, so only 'localhost' counts as local)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _reap(processes: dict[str, subprocess.Popen], deadline: float) -> None:
    """Wait for processes asked to stop; one still running at `deadline` is killed with its process group (a
    worker that missed its signal while starting over, say): a job cut short is picked up again by the sweep."""
    for name, process in processes.items():
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            click.echo(f"{name} did not stop in time; killing them.", err=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@click.command()
@click.option("--burst", is_flag=True, help="Run the jobs queued now, then exit.")
@click.option("--verbose", is_flag=True, help="Log every job, the periodic sweeps' routine runs included.")
def worker(burst: bool, verbose: bool) -> None:
    """Run an RQ worker for Directo's jobs (callbacks, SMS, recordings), with its scheduler."""
    if not verbose:
        logging.getLogger("rq.worker").addFilter(periodic.QuietRoutine())
    with services() as svc:
        if not burst:
            periodic.start(svc)
        while True:
            try:
                Worker([svc.queue.name], connection=svc.blocking_redis()).work(burst=burst, with_scheduler=True)
                return
            except (RedisConnectionError, RedisTimeoutError) as error:
                # RQ rides out Redis outages while it waits for jobs, but not while it starts or restarts its
                # scheduler: a worker must outlive a Redis restart, so it starts over once Redis answers again.
                if burst:
                    raise
                click.echo(f"Redis is unreachable ({error}); the worker starts again in {WORKER_RETRY_SECONDS} s.",
                           err=True)
                time.sleep(WORKER_RETRY_SECONDS)


@click.command()
def migrate() -> None:
    """Create or upgrade the database schema (the other commands do it too when needed)."""
    with services():
        click.echo("database schema is up to date")
