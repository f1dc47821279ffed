"""Helpers for the tests that look at rendered emails in a real browser (Chromium via Playwright).

No network: every http(s)/ws request is aborted, so remote images show their alt text and a
screenshot depends only on the HTML, the fonts installed and the Chromium build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from needs import unavailable

TESTS_DIR = Path(__file__).resolve().parent
NODE_MODULES = TESTS_DIR / "node_modules"
MJML_COMPILE = TESTS_DIR / "mjml_compile.mjs"
SETUP_HINT = "run `python3 bootstrap.py test`, which runs `npm ci` in tests/"

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT_HEIGHT = 800  # full-page screenshots grow past it
PAGE_TIMEOUT_MS = 30_000


def artifacts_dir(*parts: str) -> Path:
    """Where screenshots and diffs go: $HERALD_ARTIFACTS_DIR, else tests/artifacts (gitignored)."""
    root = Path(os.environ.get("HERALD_ARTIFACTS_DIR") or TESTS_DIR / "artifacts")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def find_chromium(playwright=None) -> tuple[str | None, str]:
    """(executable, "") or (None, why not): $HERALD_CHROMIUM, the system's Chromium, Playwright's own."""
    override = os.environ.get("HERALD_CHROMIUM")
    if override:
        if Path(override).is_file() and os.access(override, os.X_OK):
            return override, ""
        return None, f"HERALD_CHROMIUM={override!r} is not an executable file"
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate, ""
    looked = list(CHROMIUM_CANDIDATES)
    if playwright is not None:
        try:
            bundled = playwright.chromium.executable_path
        except Exception:  # noqa: BLE001 - an odd Playwright install is just "not found"
            bundled = None
        if bundled and Path(bundled).is_file():
            return bundled, ""
        looked.append(bundled or "Playwright's bundled chromium")
    return None, ("no Chromium found (looked at $HERALD_CHROMIUM, " + ", ".join(looked)
                  + "); install Debian's `chromium` or set HERALD_CHROMIUM")


def _block_network(route) -> None:
    if route.request.url.startswith(("data:", "about:", "blob:")):
        route.continue_()
    else:
        route.abort()


@contextmanager
def open_page(browser, width: int) -> Iterator:
    """A page in a fresh context, `width` CSS px wide at scale 1, with the network cut off."""
    context = browser.new_context(viewport={"width": width, "height": VIEWPORT_HEIGHT},
                                  device_scale_factor=1, color_scheme="light", reduced_motion="reduce")
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        page = context.new_page()
        page.route("**/*", _block_network)
        yield page
    finally:
        context.close()


def load(page, html: str) -> None:
    page.set_content(html, wait_until="load")


def screenshot(page, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    return path


_FACTS_JS = """() => {
  const norm = s => (s || '').replace(/\\s+/g, ' ').trim();
  return {
    lang: document.documentElement.getAttribute('lang'),
    scrollWidth: document.documentElement.scrollWidth,
    bodyScrollWidth: document.body.scrollWidth,
    text: norm(document.body.innerText),
    hrefs: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    images: [...document.images].map(img => ({src: img.getAttribute('src'), alt: img.getAttribute('alt')})),
    langs: [...new Set([...document.body.querySelectorAll('[lang]')].map(e => e.getAttribute('lang')))],
    title: document.title,
  };
}"""


def page_facts(page) -> dict:
    """What the tests assert on, read from the live DOM after layout."""
    return page.evaluate(_FACTS_JS)


def normalise_space(text: str) -> str:
    return " ".join(text.split())


# --- the official MJML compiler (tests/package.json) -------------------------------------------

def mjml_node_command() -> list[str]:
    """The command that compiles MJML on stdin with the pinned official mjml; skips/fails if missing."""
    node = shutil.which("node")
    if not node:
        unavailable(f"node is not on PATH, so the official mjml cannot run; install Node.js, then {SETUP_HINT}")
    pinned = json.loads((TESTS_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"]["mjml"]
    installed_manifest = NODE_MODULES / "mjml" / "package.json"
    if not installed_manifest.is_file():
        if not shutil.which("npm"):
            unavailable(f"npm is not on PATH and tests/node_modules is missing; install Node.js/npm, then {SETUP_HINT}")
        unavailable(f"the official mjml is not installed in tests/node_modules; {SETUP_HINT}")
    installed = json.loads(installed_manifest.read_text(encoding="utf-8"))["version"]
    if installed != pinned:
        unavailable(f"tests/node_modules has mjml {installed} but tests/package.json pins {pinned}; "
                    f"run `npm ci` in tests/")
    return [node, str(MJML_COMPILE)]


def compile_with_official_mjml(mjml: str, command: list[str], timeout: float = 60) -> tuple[str, list[dict]]:
    """(html, validation errors) from the official mjml; raises AssertionError if it fails."""
    done = subprocess.run(command, input=mjml.encode("utf-8"), capture_output=True, cwd=TESTS_DIR,
                          timeout=timeout, check=False)
    stderr = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        raise AssertionError(f"official mjml failed (exit {done.returncode}):\n{stderr}")
    errors = []
    for line in stderr.splitlines():
        try:
            errors.append(json.loads(line))
        except ValueError:
            errors.append({"message": line})
    return done.stdout.decode("utf-8"), errors
