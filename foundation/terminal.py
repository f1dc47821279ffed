"""The `herald` command's output, for a person at a terminal and for a pipe or a log file alike.

Rich lays everything out for 80 columns when its output is not a terminal, so a table sent to a file or to `less`
lost its right-hand columns. Piped, a line is as long as it needs to be; COLUMNS still decides when it is set.
"""

from __future__ import annotations

from rich.console import Console, ConsoleDimensions

PIPE_WIDTH = 10_000  # wide enough for any table's natural width: nothing is cut or wrapped


class _Output(Console):
    @property
    def size(self) -> ConsoleDimensions:
        measured = Console.size.fget(self)
        if self.is_terminal or "COLUMNS" in self._environ or self._width is not None:
            return measured
        return ConsoleDimensions(PIPE_WIDTH, measured.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)


def output() -> Console:
    """Standard output: tables and results."""
    return _Output()


def problems() -> Console:
    """Standard error: one line per problem, never wrapped (a `file:line: message` stays on its line)."""
    return _Output(stderr=True, soft_wrap=True)
