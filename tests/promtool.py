"""Prometheus's own checker, `promtool` (Debian's `prometheus` package; .ci/run installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from needs import unavailable


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`promtool ARGS`, its output as text; skips (fails on CI) where promtool is not installed."""
    executable = shutil.which("promtool")
    if executable is None:
        unavailable("promtool is not installed (apt-get install prometheus)")
    return subprocess.run([executable, *args], input=stdin, capture_output=True, text=True, timeout=60, cwd=cwd,
                          check=False)
