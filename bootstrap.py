"""Set Herald up from a fresh clone with nothing but Python 3.11+, then run the demo or the tests.

    python3 bootstrap.py demo    # render the sample content into ./outbox
    python3 bootstrap.py test    # run the whole test suite

It makes .venv/ beside this file, installs Herald into it (with the test tools for `test`, and the
pinned npm helpers under tests/ when npm is on the machine), and runs the command there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def run(*command: str | Path, cwd: Path = ROOT) -> None:
    print("+", " ".join(str(part) for part in command), flush=True)
    subprocess.run([str(part) for part in command], cwd=cwd, check=True)


def install(extra: str) -> None:
    stamp = VENV / f".installed-{extra}"
    inputs = [ROOT / "pyproject.toml", Path(__file__)]
    if stamp.exists() and all(stamp.stat().st_mtime >= f.stat().st_mtime for f in inputs):
        return
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    run(BIN / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", f".[{extra}]")
    stamp.touch()


def npm_helpers() -> None:
    """The official mjml and Mozilla's ical.js the parity tests compare against, again when the lock file changed;
    without npm those tests skip and say so."""
    npm = shutil.which("npm")
    installed = ROOT / "tests" / "node_modules" / ".package-lock.json"
    wanted = ROOT / "tests" / "package-lock.json"
    if npm and (not installed.exists() or installed.stat().st_mtime < wanted.stat().st_mtime):
        run(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", cwd=ROOT / "tests")


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):
        sys.exit("Herald needs Python 3.11 or newer.")
    command = argv[1] if len(argv) > 1 else ""
    if command == "demo":
        install("demo")
        return subprocess.call([str(BIN / "herald"), "demo", *argv[2:]], cwd=ROOT)
    if command == "test":
        install("test")
        npm_helpers()
        return subprocess.call([str(BIN / "python"), "-m", "pytest", *argv[2:]], cwd=ROOT)
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
