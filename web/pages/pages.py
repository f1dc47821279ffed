"""Rendering the self-management pages: Jinja2 templates in templates/web/, words from the catalogues.

A page speaks the language of the message it came from (the subscriber's; `both` reads Romanian
first) and offers a switch to the other one. Nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Query
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from foundation.languages import LANGUAGES
from foundation.settings import Settings
from worker.rendering.i18n import load_catalogues

Lang = Annotated[str | None, Query(pattern="^(ro|en)$", description="Show the page in this language.")]
# A campaign's number as a path parameter: within the store's 32-bit ids, so a huge one is a 422, not a 500
# (SQLite cannot even bind an integer past 64 bits).
CampaignId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The campaign's number.")]


class Pages:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.catalogues = {language: catalogue.strings
                           for language, catalogue in load_catalogues(settings.templates_dir).items()}
        self.words = {language: strings["web"] for language, strings in self.catalogues.items()}
        self.env = Environment(loader=FileSystemLoader(settings.templates_dir / "web"), undefined=StrictUndefined,
                               autoescape=select_autoescape(default=True))

    def render(self, name: str, language: str, status: int = 200, *, switch_url: str | None = None,
               embedded: bool = False, **context: Any) -> HTMLResponse:
        other = next(code for code in LANGUAGES if code != language)
        html = self.env.get_template(f"{name}.html.j2").render(
            lang=language, other_lang=other, w=self.words[language], org=self.settings, switch_url=switch_url,
            embedded=embedded, **context)
        return HTMLResponse(html, status_code=status)

    def notice(self, language: str, title_key: str, text_key: str, status: int = 200,
               embedded: bool = False) -> HTMLResponse:
        words = self.words[language]
        return self.render("notice", language, status, title=words[title_key], text=words[text_key], embedded=embedded)

    def refused(self, reason: str, status: int) -> HTMLResponse:
        """A link that cannot be used, in both languages: it no longer tells us whose it was."""
        key = {"expired": "expired", "missing": "missing", "too_large": "too_large"}.get(reason, "refused")
        return self._in_both(status, lambda words: (words[f"{key}_title"], words[f"{key}_text"]))

    def test_copy(self, purpose: str) -> HTMLResponse:
        """A link from a `--test-to` copy, in both languages (the link does not carry the copy's edition):
        what it opens in the real message; here it opens nothing and changes nothing."""
        return self._in_both(200, lambda words: (
            words["test_copy_title"], words["test_copy_text"].format(page=words["test_copy_pages"][purpose])))

    def _in_both(self, status: int, title_and_text: Callable[[dict], tuple[str, str]]) -> HTMLResponse:
        blocks = [{"lang": language, "title": title, "text": text, "contact": self.words[language]["contact"]}
                  for language in LANGUAGES for title, text in [title_and_text(self.words[language])]]
        html = self.env.get_template("refused.html.j2").render(blocks=blocks, org=self.settings)
        return HTMLResponse(html, status_code=status)


def page_language(subscriber_language: str, asked: str | None) -> str:
    """The language asked for with ?lang=, else the subscriber's (Romanian first for `both`)."""
    if asked in LANGUAGES:
        return asked
    return subscriber_language if subscriber_language in LANGUAGES else LANGUAGES[0]


def csrf_token(secret_key: str, link_token: str) -> str:
    """A form's proof that it was served by Herald for this very link: no cookie needed, nothing stored."""
    return hmac.new(secret_key.encode(), f"csrf:{link_token}".encode(), hashlib.sha256).hexdigest()[:32]


def csrf_valid(secret_key: str, link_token: str, given: str | None) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters, and a form may send any.
    return given is not None and hmac.compare_digest(csrf_token(secret_key, link_token).encode(), given.encode())
