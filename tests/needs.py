"""What a test does when a tool it needs is missing."""

from __future__ import annotations

import os

import pytest


def unavailable(reason: str) -> None:
    """Skip for a missing tool on a developer's machine, but fail on CI (CI=true), which must run these."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so this is a failure, not a skip)", pytrace=False)
    pytest.skip(reason)
