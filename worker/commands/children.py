"""What every process Herald starts for `herald up`, `herald demo` and the tests' servers gets: it dies with
the process that started it, so that nothing is left running when that one is killed."""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def die_with_parent() -> None:
    """In a child, before exec: on Linux, get SIGTERM when the parent dies, even by SIGKILL, so none outlives it."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
