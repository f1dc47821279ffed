"""Shared fixtures: settings pointed at temporary outboxes, the renderer, the shipped content."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from pathlib import Path

import pytest

from worker.content import Item, find_items, load_item
from worker.render import Renderer
from worker.settings import PROJECT_ROOT, Settings, load_settings

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return replace(load_settings(), content_dir=PROJECT_ROOT / "content",
                   templates_dir=PROJECT_ROOT / "templates", outbox_dir=tmp_path / "outbox")


@pytest.fixture(scope="session")
def renderer() -> Renderer:
    return Renderer(replace(load_settings(), templates_dir=PROJECT_ROOT / "templates"))


def parse_eml(eml: bytes) -> email.message.EmailMessage:
    """The reference every .eml Herald writes must read back through: Python's own parser."""
    return email.message_from_bytes(eml, policy=email.policy.default)


def shipped_items() -> list[Item]:
    return [load_item(folder) for folder in find_items(PROJECT_ROOT / "content")]


# --- Rendered emails in a real browser: tests/test_screenshots.py, tests/test_mjml_parity.py -----

@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session; skipped (a failure when CI=true) if there is none.

    `launch` gives the browser a fresh temporary profile (user-data dir) of its own and deletes it
    on close, so nothing carries over between runs.
    """
    from browser import CHROMIUM_ARGS, find_chromium, unavailable

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the Python package `playwright` is not installed (pip install -e '.[test]')")
    playwright = sync_playwright().start()
    try:
        executable, why_not = find_chromium(playwright)
        if executable is None:
            unavailable(why_not)
        try:
            chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except Exception as error:  # noqa: BLE001 - say which browser would not start, and why
            unavailable(f"could not launch Chromium at {executable}: {error}")
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def template_sample():
    """`get(message, edition) -> (item, compiled)`: each template's first content item of its kind, compiled.

    Content and templates come from the settings in force (HERALD_CONTENT_DIR, else the shipped
    content/); a template with no item of its kind skips (fails when CI=true). Compilations are
    cached for the session; `compiled.personalise(sample_recipient(load_settings()))` gives the HTML.
    """
    from browser import unavailable
    from worker.render import MESSAGES, CompiledEdition

    current = load_settings()
    current_renderer = Renderer(current)
    firsts: dict[str, Item] = {}
    for path in find_items(current.content_dir):
        item = load_item(path)
        for message in MESSAGES[item.kind]:
            firsts.setdefault(message, item)
    cache: dict[tuple[str, str], CompiledEdition] = {}

    def get(message: str, edition: str) -> tuple[Item, CompiledEdition]:
        if message not in firsts:
            unavailable(f"no content item for the {message!r} template in {current.content_dir}")
        if (message, edition) not in cache:
            cache[message, edition] = current_renderer.compile(firsts[message], edition, message)
        return firsts[message], cache[message, edition]

    return get
