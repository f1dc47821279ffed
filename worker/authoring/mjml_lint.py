"""Finds broken MJML structure in a template's source, with the line, before MRML sees it.

MRML reports 'unexpected end of stream' with no position and silently accepts unknown tags such as
<mj-colum>, so the template is checked here: Jinja tags are blanked (keeping lines), then every
<mj-*> tag must be known and properly closed. HTML inside <mj-text> is left to the browser.
"""

from __future__ import annotations

import difflib
import re
from html.parser import HTMLParser
from pathlib import Path

from foundation.problems import Problem

MJML_TAGS = frozenset("""
mjml mj-head mj-body mj-attributes mj-all mj-class mj-style mj-title mj-preview mj-font mj-breakpoint
mj-html-attributes mj-html-attribute mj-selector mj-section mj-column mj-group mj-wrapper mj-text
mj-image mj-button mj-divider mj-spacer mj-table mj-raw mj-social mj-social-element mj-navbar
mj-navbar-link mj-hero mj-accordion mj-accordion-element mj-accordion-title mj-accordion-text
mj-carousel mj-carousel-image mj-include
""".split())

_JINJA = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.S)


def _blank(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


class _Walker(HTMLParser):
    def __init__(self, file: Path):
        super().__init__(convert_charrefs=True)
        self.file = file
        self.open: list[tuple[str, int]] = []
        self.problems: list[Problem] = []

    def _mjml(self, tag: str) -> bool:
        if tag != "mjml" and not tag.startswith("mj-"):
            return False
        if tag not in MJML_TAGS:
            guess = difflib.get_close_matches(tag, MJML_TAGS, n=1)
            hint = f"; did you mean <{guess[0]}>?" if guess else "; see https://documentation.mjml.io/"
            self.problems.append(Problem(self.file, self.getpos()[0], f"unknown MJML tag <{tag}>{hint}"))
        return True

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if self._mjml(tag):
            self.open.append((tag, self.getpos()[0]))

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        self._mjml(tag)

    def handle_endtag(self, tag: str) -> None:
        if not (tag == "mjml" or tag.startswith("mj-")):
            return
        line = self.getpos()[0]
        if not self.open:
            self.problems.append(Problem(self.file, line, f"</{tag}> closes nothing; remove it or add <{tag}> before it"))
            return
        opened, opened_line = self.open[-1]
        if opened == tag:
            self.open.pop()
        elif any(name == tag for name, _ in self.open):
            self.problems.append(Problem(self.file, opened_line, f"<{opened}> is never closed; add </{opened}> "
                                         f"before </{tag}> on line {line}"))
            while self.open and self.open[-1][0] != tag:
                self.open.pop()
            self.open.pop()
        else:
            self.problems.append(Problem(self.file, line, f"</{tag}> closes nothing; <{opened}> from line "
                                         f"{opened_line} is open here: write </{opened}>"))


def lint_mjml(file: Path, source: str) -> list[Problem]:
    walker = _Walker(file)
    walker.feed(_JINJA.sub(_blank, source))
    walker.close()
    for tag, line in walker.open:
        walker.problems.append(Problem(file, line, f"<{tag}> is never closed; add </{tag}>"))
    return walker.problems
