"""`directo run`, `directo worker` and `directo migrate`: the processes that serve calls."""

from __future__ import annotations

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
# gunicorn loads it by name: the access log never shows a media link's token.
ACCESS_LOG = "voice.access_log.RedactingLogger"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--web-workers", default=2, show_default=True, type=int, help="gunicorn worker processes.")
@click.option("--threads", default=64, show_default=True, type=int,
              help="Threads per web worker; each open agent page holds one.")
def run(host: str, port: int, web_workers: int, threads: int) -> None:
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
    web = subprocess.Popen(
        [gunicorn, "--bind", f"{host}:{port}", "--workers", str(web_workers), "--threads", str(threads),
         "--worker-class", "gthread", "--access-logfile", "-", "--logger-class", ACCESS_LOG, "voice:create_app()"],
        env=env,
    )
    worker = subprocess.Popen([sys.executable, "-m", "directo.cli", "worker"], env=env)
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
        for process in (web, worker):
            process.wait(timeout=30)
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
