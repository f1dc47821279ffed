"""Markdown to email HTML and to readable plain text, from the same parse.

The text alternative is built from the content, not scraped from HTML: headings stay headings,
lists stay lists, and links become numbered references listed at the end of the message.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

_md = MarkdownIt("commonmark", {"typographer": False}).disable("html_block").disable("html_inline")
WIDTH = 72


def to_html(source: str) -> Markup:
    """Editors' Markdown as HTML; raw HTML in content is not allowed, so this is safe to embed."""
    return Markup(_md.render(source).strip())


class LinkList:
    """Numbers the links of one message in reading order, for the text part's reference list."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def number(self, url: str) -> int:
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url) + 1

    def render(self, heading: str) -> str:
        if not self.urls:
            return ""
        lines = [heading, "-" * len(heading)]
        lines += [f"[{n}] {url}" for n, url in enumerate(self.urls, 1)]
        return "\n".join(lines)


def images_without_description(source: str) -> list[tuple[int, str]]:
    """(line index, address) of each image with no description, `![](address)`: a reader who cannot see the
    picture, or whose mail client blocks it, learns nothing of it."""
    lines = source.splitlines()
    found = []
    for block in _md.parse(source):
        for child in block.children or []:
            if child.type == "image" and not child.content.strip() and block.map:
                address = _md.normalizeLinkText(str(child.attrGet("src") or ""))
                first, last = block.map
                found.append((next((n for n in range(first, last) if address in lines[n]), first), address))
    return found


def to_text(source: str, links: LinkList) -> str:
    """Plain text of `source`, its links replaced by `[n]` references taken from `links`."""
    return _blocks(_md.parse(source), links).strip("\n")


def _inline(children: Sequence[Token], links: LinkList) -> str:
    out: list[str] = []
    pending: list[int] = []
    for token in children:
        if token.type in ("text", "code_inline"):
            out.append(token.content)
        elif token.type in ("softbreak",):
            out.append(" ")
        elif token.type == "hardbreak":
            out.append("\n")
        elif token.type == "image":
            out.append(token.attrGet("alt") or token.content)
        elif token.type == "link_open":
            href = str(token.attrGet("href") or "")
            pending.append(0 if href.startswith("mailto:") else links.number(href))
        elif token.type == "link_close":
            n = pending.pop()
            if n:
                out.append(f" [{n}]")
    return "".join(out)


def _blocks(tokens: Sequence[Token], links: LinkList) -> str:
    lines: list[str] = []
    prefixes: list[str] = []  # one per open list item: the marker for its first line
    counters: list[int | None] = []
    heading = 0
    for token in tokens:
        if token.type == "heading_open":
            heading = int(token.tag[1])
        elif token.type in ("bullet_list_open", "ordered_list_open"):
            counters.append(int(token.attrGet("start") or 1) if token.type == "ordered_list_open" else None)
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            counters.pop()
            if not counters:
                lines.append("")
        elif token.type == "list_item_open":
            if counters[-1] is None:
                prefixes.append("- ")
            else:
                prefixes.append(f"{counters[-1]}. ")
                counters[-1] += 1
        elif token.type == "list_item_close":
            prefixes.pop()
        elif token.type == "inline":
            text = _inline(token.children or [], links)
            if heading:
                lines += [text, ("=" if heading <= 2 else "-") * len(text), ""]
                heading = 0
            elif prefixes:
                indent = "  " * (len(prefixes) - 1)
                marker = prefixes[-1]
                lines.append(textwrap.fill(text, WIDTH, initial_indent=indent + marker,
                                           subsequent_indent=indent + " " * len(marker),
                                           break_long_words=False, break_on_hyphens=False))
                prefixes[-1] = " " * len(marker)
            else:
                lines += [_fill(text), ""]
        elif token.type in ("fence", "code_block"):
            lines += [token.content.rstrip("\n"), ""]
        elif token.type == "hr":
            lines += ["-" * 20, ""]
    return "\n".join(lines)


def _fill(text: str) -> str:
    return "\n".join(textwrap.fill(part, WIDTH, break_long_words=False, break_on_hyphens=False)
                     for part in text.split("\n"))
