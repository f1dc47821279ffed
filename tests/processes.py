"""`herald` commands as an operator runs them, each in a process of its own, and what they leave running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from foundation.settings import PROJECT_ROOT

ADDRESSES = ("HERALD_DATABASE_URL", "HERALD_REDIS_URL", "HERALD_SMTP_URL", "HERALD_BASE_URL", "HERALD_LISTEN")


def own_env(root: Path, **overrides: str) -> dict[str, str]:
    """An installation under `root` as a fresh clone has one: its data/ and outbox/ there and no address set, so
    Herald chooses its database, Redis, sink and web itself; `overrides` set variables."""
    env = {name: value for name, value in os.environ.items() if name not in ADDRESSES}
    env.update(HERALD_DATA_DIR=str(root / "data"), HERALD_OUTBOX_DIR=str(root / "outbox"), HERALD_SWEEP_SECONDS="1",
               COLUMNS="200")
    return env | overrides


def herald(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], env=env, cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)


def processes_with(marker: str) -> list[int]:
    """Processes whose environment mentions `marker` (every child of a test's `herald up` has it there)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:  # gone, or not ours to read
            continue
    return found
