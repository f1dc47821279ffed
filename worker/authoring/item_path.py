"""What an operator types for an item, to its folder: `content/events/SLUG`, `events/SLUG`, `SLUG`, or a file in it.

One reading for `herald send`, `render`, `check`, `events attendees` and the API, so a form that works for one
works for all. Inside the content folder only the folders found there are candidates: the text given is compared
with their names, never opened, so the API cannot be walked out of the content folder with it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

from foundation.problems import display_path
from worker.authoring.content import find_items

_LISTED = 10  # items named in the answer when none is close to what was typed


class NoSuchItem(ValueError):
    """Nothing in the content folder answers to the name; the message lists close matches."""


def item_folder(path: Path) -> Path | None:
    """The item folder at `path`, or holding the file `path`; None when there is none. os.path: a path too long
    to look up is no item, not an OSError."""
    folder = path if os.path.isdir(path) else path.parent
    return folder if os.path.isfile(folder / "meta.yaml") else None


def find_item(given: str | Path, content_dir: Path, *, drafts: bool = False, under: str = "") -> Path:
    """The item folder `given` names in `content_dir` (in its `under` folder, when given); with `drafts`, also an item
    folder anywhere, as typed (`herald check` and `render` work on drafts; `send` then refuses them in its words).

    Raises NoSuchItem, which says which items come close."""
    if drafts and (folder := item_folder(Path(given))):
        return folder
    base = content_dir / under if under else content_dir
    items = {folder.relative_to(base).as_posix(): folder for folder in find_items(base)}
    names = _spellings(str(given), content_dir, under)
    found = sorted({key for key in items for name in names if key == name or key.rsplit("/", 1)[-1] == name})
    if len(found) == 1:
        return items[found[0]]
    shown = str(given) if len(str(given)) <= 80 else f"{str(given)[:80]}…"
    if found:
        raise NoSuchItem(f"'{shown}' names {len(found)} items: {', '.join(found)}; give the one you mean")
    close = _close(names[-1], list(items)) if names else []
    if close:
        raise NoSuchItem(f"no such item: '{shown}'; did you mean {' or '.join(close)}?")
    listed = ", ".join(sorted(items)[:_LISTED]) + (", …" if len(items) > _LISTED else "")
    raise NoSuchItem(f"no such item: '{shown}'; the items in {display_path(base)} are: {listed or 'none'}")


def _close(name: str, keys: list[str]) -> list[str]:
    """The items whose name holds what was typed, or is spelt like it (a letter missing, swapped)."""
    by_name = {key.rsplit("/", 1)[-1]: key for key in keys} | {key: key for key in keys}
    holding = [key for key in keys if len(name) >= 3 and name in key]
    alike = [by_name[match] for match in difflib.get_close_matches(name, list(by_name), n=5, cutoff=0.75)]
    return list(dict.fromkeys(holding + alike))[:5]


def _spellings(given: str, content_dir: Path, under: str) -> list[str]:
    """`given` relative to the folder searched: as typed without the content folder's own name and `under`, and, for a
    path that leads into that folder from where the command runs, relative to it. Text only; nothing is looked up."""
    parts = [part for part in given.replace("\\", "/").split("/") if part not in ("", ".")]
    for prefix in (content_dir.name, under):
        if prefix and parts[:1] == [prefix]:
            parts = parts[1:]
    names = ["/".join(parts)] if parts and ".." not in parts and not os.path.isabs(given) else []
    try:
        typed = os.path.relpath(os.path.abspath(given), content_dir.resolve() / under)
    except ValueError:  # another drive, on Windows
        return names
    if not typed.startswith(".."):
        names.append(Path(typed).as_posix())
    return names
