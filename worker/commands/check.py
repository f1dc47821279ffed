"""`herald check`: every mistake in content and templates, as `file:line: message`, before anything is sent.

It loads every item, parses every template, lints the MJML, renders every (item, edition, message)
with StrictUndefined, and inspects the HTML a recipient would get.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from functools import partial
from html.parser import HTMLParser
from pathlib import Path

import jinja2
import yaml

from foundation.db import database_url, open_store
from foundation.languages import CEDILLAS
from foundation.problems import ContentInvalid, Problem, display_path
from foundation.settings import Settings
from foundation.yamldoc import parse_yaml
from subscribers.segments import SEGMENTS_FILE, load_segments
from subscribers.topics import TOPICS_FILE, load_topics
from worker.authoring.content import Item, find_items, in_content, load_item
from worker.authoring.item_path import NoSuchItem, find_item, item_folder
from worker.authoring.mjml_lint import lint_mjml
from worker.campaigns.ledger import item_key
from worker.events import lifecycle
from worker.rendering.i18n import load_catalogues
from worker.rendering.render import (
    CONFIRMATION,
    EDITIONS,
    CompiledEdition,
    Renderer,
    messages_of,
    sample_recipient,
)

GMAIL_CLIP_BYTES = 102 * 1024


@dataclass(frozen=True)
class Targets:
    content: list[Path]
    templates_dir: Path


def is_templates_dir(path: Path) -> bool:
    return os.path.isfile(path / "base.mjml.j2")  # os.path: False, not OSError, for a path too long to look up


def _templates_root(path: Path) -> Path | None:
    """The templates folder `path` is, or holds the file `path` (templates/i18n/en.yaml: two levels down)."""
    candidates = [path] if os.path.isdir(path) else list(path.parents)[:2]
    return next((folder for folder in candidates if is_templates_dir(folder)), None)


def split_targets(paths: list[Path], settings: Settings) -> Targets:
    """Template folders (or files in one) among `paths` replace the configured one; the rest are content."""
    templates = [root for path in paths if (root := _templates_root(path))]
    content = [path for path in paths if not _templates_root(path)]
    return Targets(content=content or [settings.content_dir],
                   templates_dir=templates[-1] if templates else settings.templates_dir)


def item_folders(root: Path, content_dir: Path) -> list[Path]:
    """The item folders a path given to `herald check` means: a folder of items, an item, the item of a file in it,
    or an item named as `herald send` takes it. NoSuchItem when it means none."""
    if os.path.isdir(root):
        folders = find_items(root)
        if folders or root.resolve() == content_dir.resolve():  # an installation may start with no item
            return folders
        raise NoSuchItem("holds no content item (a folder with meta.yaml)")
    if os.path.isfile(root):
        if folder := item_folder(root):
            return [folder]
        if root.name in (SEGMENTS_FILE, TOPICS_FILE):
            return []  # checked with every run
        raise NoSuchItem("is not in a content item (a folder with meta.yaml); give the item's folder, or no path "
                         "to check everything")
    return [find_item(root, content_dir)]


def check(paths: list[Path], settings: Settings) -> list[Problem]:
    targets = split_targets(paths, settings)
    settings = replace(settings, templates_dir=targets.templates_dir.resolve())
    problems = check_templates(targets.templates_dir)
    items: list[Item] = []
    folders: list[Path] = []
    for root in targets.content:
        try:
            folders += item_folders(root, settings.content_dir)
        except NoSuchItem as error:
            problems.append(Problem(root, 1, str(error)))
    for folder in dict.fromkeys(folders):
        try:
            item = load_item(folder)
        except ContentInvalid as error:
            problems.extend(error.problems)
            continue
        problems.extend(item.notes)
        items.append(item)
    problems.extend(check_audiences(list(dict.fromkeys(folders)), settings.content_dir))
    if not any(not p.fixable for p in problems):
        problems.extend(check_rendering(items, settings))
    return sorted(set(problems))


_CHANGED_FIELD = {"time": "start", "place": "venue", "join_url": "online_url", "cancelled": "status"}


def unannounced_changes(paths: list[Path], settings: Settings) -> list[Problem]:
    """Events whose time, place, join link or status changed since the invitations went out: not
    mistakes, but mail owed to the invitees. Needs the store; without one nothing was sent, so nothing is owed,
    and neither is anything for an item outside the content folder."""
    url = database_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).is_file()):
        return []
    notices = []
    with open_store(settings)() as session:
        for root in split_targets(paths, settings).content:
            try:
                folders = item_folders(root, settings.content_dir)
            except NoSuchItem:
                continue  # check() reports it
            for folder in folders:
                try:
                    item = load_item(folder)
                except ContentInvalid:
                    continue  # check() reports it
                if item.kind != "event" or not in_content(item, settings.content_dir):
                    continue  # a draft outside the content folder cannot have been sent
                pending = lifecycle.unannounced(session, item_key(item, settings.content_dir), item.meta)
                meta = item.path / "meta.yaml"
                doc = parse_yaml(meta.read_text(encoding="utf-8"))
                send = f"herald send {display_path(item.path)}"
                for change in pending or ():
                    field = _CHANGED_FIELD[change]
                    text = (f"status is cancelled but the invitees were not told; beat sends the cancellation "
                            f"within a minute, or run `{send}` now" if change == "cancelled" else
                            f"{field} changed since the invitations went out; run `{send}` to send the update "
                            "to the invitees who did not decline")
                    notices.append(Problem(meta, doc.line_of((field,)), text))
    return sorted(notices)


def check_audiences(folders: list[Path], content_dir: Path) -> list[Problem]:
    """The topics and segments files are valid, and every item's audience names a segment, even in an item with
    other problems: every problem at once."""
    try:
        segments = load_segments(content_dir, load_topics(content_dir))
    except ContentInvalid as error:
        return error.problems
    problems = []
    for folder in folders:
        declared = _audience(folder)
        if declared and declared[0] not in segments:
            problems.append(Problem(folder / "meta.yaml", declared[1], f"audience '{declared[0]}' is not a segment in "
                                    f"{SEGMENTS_FILE}; use one of {', '.join(segments)}"))
    return problems


def _audience(folder: Path) -> tuple[str, int] | None:
    """The audience meta.yaml names, and its line; None when it names none or cannot be read (load_item says why,
    and never reads a meta.yaml linked from outside the folder)."""
    meta = folder / "meta.yaml"
    try:
        if not meta.resolve().is_relative_to(folder.resolve()):
            return None
        doc = parse_yaml(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError):
        return None
    audience = doc.data.get("audience") if isinstance(doc.data, dict) else None
    return (audience, doc.line_of(("audience",))) if isinstance(audience, str) and audience.strip() else None


def check_templates(templates_dir: Path) -> list[Problem]:
    problems: list[Problem] = []
    env = jinja2.Environment()
    for file in sorted(templates_dir.rglob("*.j2")):
        source = file.read_text(encoding="utf-8")
        try:
            env.parse(source, name=file.name, filename=str(file))
        except jinja2.TemplateSyntaxError as error:
            problems.append(_syntax(file, source, error))
            continue
        if file.name.endswith(".mjml.j2"):
            problems.extend(lint_mjml(file, source))
    try:
        load_catalogues(templates_dir)
    except ContentInvalid as error:
        problems.extend(error.problems)
    return problems


_BLOCK_TAG = re.compile(r"\{%-?\s*(\w+)")
_OPENERS = frozenset({"if", "for", "block", "macro", "call", "filter", "with", "raw", "trans"})


def _syntax(file: Path, source: str, error: jinja2.TemplateSyntaxError) -> Problem:
    """Jinja names the line where it gave up; an unclosed block is reported where it was opened."""
    unclosed = _unclosed_block(source)
    if unclosed and "needs to be closed" in error.message:
        name, line = unclosed
        return Problem(file, line, f"template syntax: {{% {name} %}} is never closed; add {{% end{name} %}}")
    return Problem(file, error.lineno or 1, f"template syntax: {error.message}; "
                   "close every {{ … }} and {% … %}, and every {% if %}/{% for %}/{% block %}")


def _unclosed_block(source: str) -> tuple[str, int] | None:
    stack: list[tuple[str, int]] = []
    for match in _BLOCK_TAG.finditer(source):
        tag, line = match.group(1), source.count("\n", 0, match.start()) + 1
        if tag in _OPENERS:
            stack.append((tag, line))
        elif tag.startswith("end") and stack:
            if stack[-1][0] != tag[3:]:
                return stack[-1]
            stack.pop()
    return stack[-1] if stack else None


def check_rendering(items: list[Item], settings: Settings) -> list[Problem]:
    """Render everything as it would be sent, and inspect what a recipient would get."""
    problems: list[Problem] = []
    renderer = Renderer(settings)
    recipient = sample_recipient(settings)
    for edition in EDITIONS:  # the double opt-in request needs no item
        compiled = _compiled(partial(renderer.compile_confirmation, edition, date.today()), settings, CONFIRMATION)
        if isinstance(compiled, Problem):
            return [compiled]
    for item in items:
        for message in messages_of(item):
            for edition in EDITIONS:
                compiled = _compiled(partial(renderer.compile, item, edition, message), settings, message)
                if isinstance(compiled, Problem):
                    return [*problems, compiled]  # the same template fails the same way for every item
                html = compiled.personalise(recipient).html
                problems.extend(inspect_html(html, item, edition, compiled.language, settings))
    return problems


def _compiled(compile_edition: Callable[[], CompiledEdition], settings: Settings,
              message: str) -> CompiledEdition | Problem:
    """The compiled edition, or the template mistake that stopped it, with its file and line."""
    try:
        return compile_edition()
    except jinja2.UndefinedError as error:
        return _undefined(error, settings.templates_dir, message)
    except OSError as error:  # MRML's parse errors
        return Problem(settings.templates_dir / f"{message}.mjml.j2", 1,
                       f"MRML cannot compile the MJML: {error}; check the tags of this template")


def _undefined(error: jinja2.UndefinedError, templates_dir: Path, message: str) -> Problem:
    frames = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename.endswith(".j2")]
    file, line = (Path(frames[-1].filename), frames[-1].lineno) if frames else (templates_dir / f"{message}.mjml.j2", 1)
    return Problem(file, line, f"unknown template variable: {error.message}; use one of the variables "
                   "listed in templates/README.md, or add the string to both catalogues in templates/i18n/")


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.images_without_alt: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang")
        elif tag == "img" and not (values.get("alt") or "").strip():
            self.images_without_alt.append(values.get("src") or "")
        elif tag == "a" and values.get("href") is not None:
            self.hrefs.append(values["href"] or "")


def inspect_html(html: str, item: Item, edition: str, language: str, settings: Settings) -> list[Problem]:
    scan = _Scan()
    scan.feed(html)
    meta_file = item.path / "meta.yaml"
    where = f"{edition} edition"
    found: list[Problem] = []
    size = len(html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        found.append(Problem(meta_file, 1, f"the {where} is {size // 1024} KB of HTML; Gmail clips messages over "
                             "102 KB: shorten the articles or move some to the website"))
    if scan.lang != language:
        found.append(Problem(meta_file, 1, f"the {where} has lang={scan.lang!r}, expected {language!r}; "
                             "keep <mjml lang=\"{{ lang }}\"> in templates/base.mjml.j2"))
    for src in scan.images_without_alt:
        found.append(_locate(item, src, f"image {src} has no alt text in the {where}; describe it (image_alt)"))
    for href in scan.hrefs:
        if href.startswith(("https://", "mailto:", settings.base_url + "/")):
            continue
        found.append(_locate(item, href, f"link '{href}' is not an absolute https:// address; write the full https:// link"))
    if any(ch in html for ch in "şţŞŢ"):
        found.append(Problem(meta_file, 1, f"the {where} contains cedilla letters; write ș ț (comma below)"))
    return found


def _locate(item: Item, needle: str, message: str) -> Problem:
    """Point at the content line holding `needle`, or at meta.yaml when no file holds it."""
    for file in [item.path / "meta.yaml", *(text.file for text in item.texts.values())]:
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
            if needle and needle in line:
                return Problem(file, number, message)
    return Problem(item.path / "meta.yaml", 1, message)


def fix_cedillas(problems: list[Problem]) -> list[Path]:
    """Rewrite the files whose only fault is fixable; returns them."""
    files = sorted({p.file for p in problems if p.fixable})
    for file in files:
        file.write_text(file.read_text(encoding="utf-8").translate(CEDILLAS), encoding="utf-8")
    return files
