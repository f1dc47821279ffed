"""Herald's two languages, and the one spelling rule every file an editor writes obeys: Romanian's ș and ț
have a comma below, never the cedilla of ş and ţ (which fonts and readers take for Turkish)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from foundation.problems import Problem

LANGUAGES: tuple[str, ...] = ("ro", "en")
Language = Literal["ro", "en"]

CEDILLAS = str.maketrans({"ş": "ș", "ţ": "ț", "Ş": "Ș", "Ţ": "Ț"})


def read_text(path: Path) -> tuple[str, list[Problem]]:
    """The file's text with cedillas repaired, and where they were."""
    raw = path.read_text(encoding="utf-8")
    notes = [
        Problem(path, number, f"cedilla letter '{ch}' at column {col + 1}; Romanian uses "
                f"'{ch.translate(CEDILLAS)}' (comma below): run `herald check --fix`", fixable=True)
        for number, text in enumerate(raw.splitlines(), 1)
        for col, ch in enumerate(text) if ch in "şţŞŢ"
    ]
    return raw.translate(CEDILLAS), notes
