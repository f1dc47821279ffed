"""One shape for everything wrong with a content or template file, so every tool reports it alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Problem:
    file: Path
    line: int
    message: str
    fixable: bool = False  # loading repairs it (cedillas); `herald check` still reports it

    def __str__(self) -> str:
        return f"{display_path(self.file)}:{self.line}: {self.message}"


def display_path(path: Path) -> str:
    """Paths relative to the working directory when possible, as compilers print them."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class ContentInvalid(Exception):
    """Raised with every problem found, so an editor fixes them all in one round."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))
