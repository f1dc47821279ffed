"""What a reader with a screen reader meets: axe-core (pinned in tests/package.json) over every message kind
in every edition and every web page in both languages, and the language of parts that axe cannot see.

axe runs the WCAG 2.1 A and AA rules only (tags wcag2a, wcag2aa, wcag21a, wcag21aa) and must find nothing.
Language of parts (WCAG 3.1.2): every catalogue string a message or page shows sits under an element whose
nearest `lang` is the string's language; in the "both" edition the English button labels are the case in
point. The messages are rendered by the engine's stage 1 and 2; the pages come from the real web app served
by uvicorn (tests/live_server.py) on a SQLite store, opened in one Chromium for the whole module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from browser import NODE_MODULES, SETUP_HINT, TESTS_DIR, load, open_page
from engine import seed
from live_server import live_server, site_page, sqlite_settings
from needs import unavailable
from sqlalchemy import select
from sqlalchemy.engine import make_url

from foundation import clock
from foundation.clock import OFFSET_FILE_ENV
from foundation.db import open_store
from foundation.settings import Settings, load_settings
from subscribers.models import Subscriber
from subscribers.tokens import PATHS, Signer
from worker.authoring.content import load_item
from worker.campaigns import ledger
from worker.events import lifecycle
from worker.events.announcement import Announced
from worker.rendering.i18n import load_catalogues
from worker.rendering.render import EDITIONS, MESSAGES, Renderer, sample_recipient

WCAG_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
MESSAGE_KINDS = (*(message for messages in MESSAGES.values() for message in messages), "confirmation")
MIN_LITERAL = 4  # catalogue strings with fewer letters of their own say too little to tell a language by


@cache
def axe_source() -> str:
    """axe-core as tests/package.json pins it; skips (fails on CI) when tests/node_modules lacks it."""
    pinned = json.loads((TESTS_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"]["axe-core"]
    manifest = NODE_MODULES / "axe-core" / "package.json"
    if not manifest.is_file():
        unavailable(f"axe-core is not installed in tests/node_modules; {SETUP_HINT}")
    installed = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    if installed != pinned:
        unavailable(f"tests/node_modules has axe-core {installed} but tests/package.json pins {pinned}; run `npm ci` in tests/")
    return (NODE_MODULES / "axe-core" / "axe.min.js").read_text(encoding="utf-8")


def axe_violations(page) -> list[str]:
    """axe's WCAG 2.1 A/AA violations on the page as it is now, one line per rule and element."""
    page.evaluate(axe_source())  # through the DevTools protocol: a page's CSP does not apply
    found = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})"
                          ".then(result => result.violations.map(v => ({id: v.id, help: v.help,"
                          " nodes: v.nodes.map(n => n.html.slice(0, 160))})))", WCAG_AA)
    return [f"{violation['id']} ({violation['help']}): {node}" for violation in found for node in violation["nodes"]]


_TEXT_LANGS_JS = """() => {
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent.replace(/\\s+/g, ' ').trim();
    if (!text) continue;
    const holder = node.parentElement.closest('[lang]');
    found.push({text, lang: holder ? holder.getAttribute('lang') : null});
  }
  return found;
}"""


def _strings(tree: dict, prefix: str = "") -> dict[str, str]:
    flat = {}
    for key, value in tree.items():
        flat.update(_strings(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": str(value)})
    return flat


@cache
def catalogue_patterns(templates_dir: Path, section: str | None) -> dict[str, list[tuple[str, re.Pattern]]]:
    """Per language, each catalogue string that reads differently in the other language as a pattern (its
    {fields} match anything); `section` "web" for the pages' words, None for the messages'."""
    catalogues = {language: catalogue.strings for language, catalogue in load_catalogues(templates_dir).items()}
    flat = {language: _strings(strings["web"] if section else {k: v for k, v in strings.items() if k != "web"})
            for language, strings in catalogues.items()}
    patterns: dict[str, list[tuple[str, re.Pattern]]] = {language: [] for language in flat}
    for language, strings in flat.items():
        others = {text for other, their in flat.items() if other != language for text in their.values()}
        for key, text in strings.items():
            pieces = re.split(r"\{[a-z_]+\}", text)
            if text in others or sum(len(piece.strip()) for piece in pieces) < MIN_LITERAL:
                continue
            body = ".+?".join(re.escape(" ".join(piece.split())) for piece in pieces)
            patterns[language].append((key, re.compile(rf"(?<!\w){body}(?!\w)")))
    return patterns


def placed_strings(page, templates_dir: Path, section: str | None) -> list[tuple[str, str, str, str]]:
    """Each catalogue string found on the page: (its language, its key, the nearest lang= above it, the text)."""
    return [(language, key, node["lang"], node["text"]) for node in page.evaluate(_TEXT_LANGS_JS)
            for language, patterns in catalogue_patterns(templates_dir, section).items()
            for key, pattern in patterns if pattern.search(node["text"])]


def misplaced_strings(page, templates_dir: Path, section: str | None) -> list[str]:
    """Catalogue strings on the page whose nearest lang= is not their language."""
    return [f"{language} '{key}' under lang={held}: {text[:80]!r}"
            for language, key, held, text in placed_strings(page, templates_dir, section) if held != language]


_STRUCTURE_JS = """() => ({
  levels: [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].map(h => Number(h.tagName[1])),
  boldCells: [...document.querySelectorAll('td')].filter(td => /font-weight:\\s*bold/.test(td.getAttribute('style') || ''))
    .map(td => td.textContent.trim()).filter(Boolean),
  headerCells: [...document.querySelectorAll('th')].map(th => th.getAttribute('scope')),
})"""


def structure_problems(page) -> list[str]:
    """Headings that skip a level (H1 to H3), labels in bold cells rather than row headers."""
    found = page.evaluate(_STRUCTURE_JS)
    problems = [f"heading H{level} after H{before}" for before, level in zip([0, *found["levels"]], found["levels"])
                if level > before + 1]
    problems += [f"a label in a bold <td> instead of <th scope=row>: {text!r}" for text in found["boldCells"]]
    problems += [f"a <th> with scope={scope}" for scope in found["headerCells"] if scope not in ("row", "col")]
    return problems


# ---- every message kind, in every edition -------------------------------------------------------

@pytest.fixture(scope="module")
def messages(template_sample) -> dict[tuple[str, str], str]:
    """The HTML of each (message kind, edition) as a recipient in another zone gets it; an update with a change."""
    settings = load_settings()
    renderer = Renderer(settings)
    recipient = sample_recipient(settings)
    rendered = {}
    for edition in EDITIONS:
        for kind in MESSAGE_KINDS:
            if kind == "confirmation":
                compiled = renderer.compile_confirmation(edition, date(2027, 1, 14))
            elif kind == "update":
                item, _ = template_sample(kind, edition)
                now = Announced.of(item.meta)
                before = replace(now, starts_at=now.starts_at - timedelta(days=1), ends_at=now.ends_at - timedelta(days=1),
                                 place="Piața Unirii 1, Iași")
                compiled = renderer.compile(item, edition, kind, (before, now))
            else:
                compiled = template_sample(kind, edition)[1]
            rendered[kind, edition] = compiled.personalise(recipient).html
    return rendered


@pytest.mark.parametrize("edition", tuple(EDITIONS))
def test_every_message_kind_passes_axe_and_says_each_string_in_its_language(browser, messages, edition):
    problems = {}
    templates_dir = load_settings().templates_dir
    with open_page(browser, 600) as page:
        for kind in MESSAGE_KINDS:
            load(page, messages[kind, edition])
            found = axe_violations(page) + misplaced_strings(page, templates_dir, None) + structure_problems(page)
            if found:
                problems[kind] = found
            seen = {language for language, *_ in placed_strings(page, templates_dir, None)}
            assert seen == set(EDITIONS[edition]), f"the {kind}'s catalogue strings were not all found: {seen}"
    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)


# ---- every web page, in both languages ------------------------------------------------------------

NEWSLETTER = "newsletters/2027-01-uia-transfer-networks"
EVENT = "events/capacities-transnational-alliance-webinar"
PEOPLE = 90
# Each flow changes its own person: unsubscribe, preferences, erasure, confirmation, answer, view.
ROLES = ("unsubscribe", "preferences", "delete", "confirm", "rsvp", "view")


@dataclass
class Site:
    url: str
    settings: Settings
    signer: Signer
    newsletter: int  # a sent campaign of the newsletter to a public segment: /m/ and /archive/
    invitation: int  # a started invitation: /r/
    people: dict[str, dict[str, Subscriber]]  # by language, a person per role

    def link(self, purpose: str, person: Subscriber, campaign: int | None = None,
             issued_at: datetime | None = None) -> str:
        return f"{self.url}/{PATHS[purpose]}/{self.signer.sign(purpose, person.id, person.link_key, campaign, issued_at)}"


@pytest.fixture(scope="module")
def site(tmp_path_factory, migrated_template, redis_server) -> Iterator[Site]:
    """The live web app on a store of fictional people, a sent newsletter and an invitation whose answers are open."""
    workdir = tmp_path_factory.mktemp("accessibility")
    settings = sqlite_settings(workdir, make_url(migrated_template("sqlite")).database, redis_server.url)
    seed(settings, PEOPLE, seed_value=11)
    event = load_item(settings.content_dir / EVENT).meta
    offset = workdir / "clock-offset"  # three days before the answers close, whatever today is
    offset.write_text(str((event.aware(event.rsvp_deadline) - timedelta(days=3) - datetime.now(UTC)).total_seconds()))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(OFFSET_FILE_ENV, str(offset))
        sessions = open_store(settings)
        try:
            with sessions() as session:
                now = clock.now()
                newsletter = ledger.create(session, item=NEWSLETTER, message="newsletter", segment="all-subscribers",
                                              edition=None, send_at=None, origin="cli", now=now)
                newsletter.state, newsletter.finished_at = "sent", now
                invitation = ledger.create(session, item=EVENT, message="invitation", segment="all-subscribers",
                                              edition=None, send_at=None, origin="cli", now=now)
                lifecycle.publish(session, EVENT, event, now)
                people: dict[str, dict[str, Subscriber]] = {}
                for language in ("ro", "en"):
                    found = session.scalars(select(Subscriber).where(Subscriber.status == "confirmed",
                                                                     Subscriber.language == language)
                                            .order_by(Subscriber.id)).all()
                    assert len(found) >= len(ROLES), f"the seed gave only {len(found)} confirmed {language} people"
                    people[language] = dict(zip(ROLES, found))
                    people[language]["confirm"].status = "pending"
                session.commit()
                ids = newsletter.id, invitation.id
            with live_server(settings) as server:
                yield Site(server.url, server.settings, Signer.from_settings(server.settings), *ids, people)
        finally:
            sessions.kw["bind"].dispose()


def submit(page) -> None:
    """Send the page's (first) form with its button, as a person does, and wait for the answer."""
    with page.expect_navigation():
        page.locator("main form button[type=submit]").first.click()


def page_problems(page, templates_dir: Path, words: str | None = "web") -> list[str]:
    """axe's findings, misplaced strings, skipped heading levels, and not exactly one <main>."""
    main = page.evaluate("document.querySelectorAll('main').length")
    return (axe_violations(page) + misplaced_strings(page, templates_dir, words) + structure_problems(page)
            + ([] if main == 1 else [f"{main} <main> elements, not one"]))


def test_every_web_page_passes_axe_in_both_languages(browser, site):
    """Every page a person can reach, as they reach it: links opened, forms filled and sent."""
    templates_dir = site.settings.templates_dir
    problems: dict[str, list[str]] = {}

    def check(page, name: str, words: str | None = "web") -> None:
        if found := page_problems(page, templates_dir, words):
            problems[name] = found

    with site_page(browser, site.url, 1024) as visit:
        page = visit.page
        for lang in ("ro", "en"):
            people = site.people[lang]
            for path, name in ((f"/subscribe?lang={lang}", "subscribe"), (f"/subscribe/embed?lang={lang}", "embed"),
                               (f"/archive/?lang={lang}", "archive")):
                page.goto(site.url + path)
                check(page, f"{name}.{lang}")
            page.goto(f"{site.url}/archive/{site.newsletter}?lang={lang}")
            check(page, f"archived.{lang}", None)
            page.goto(site.link("view", people["view"], site.newsletter))
            check(page, f"view.{lang}", None)

            page.goto(f"{site.url}/subscribe?lang={lang}")
            page.fill("#email", "someone@localhost")  # a browser takes it; the server cannot write to it
            page.check("#consent")
            submit(page)
            check(page, f"subscribe-error.{lang}")
            page.fill("#email", "someone@example.org")
            page.check("#consent")
            page.evaluate("document.querySelector('#website').value = 'a robot'")  # answered like anyone
            submit(page)
            check(page, f"subscribe-sent.{lang}")

            page.goto(site.link("unsubscribe", people["unsubscribe"], site.newsletter) + f"?lang={lang}")
            check(page, f"unsubscribe.{lang}")
            submit(page)
            check(page, f"unsubscribed.{lang}")
            submit(page)
            check(page, f"undone.{lang}")

            page.goto(site.link("preferences", people["preferences"], site.newsletter) + f"?lang={lang}")
            check(page, f"preferences.{lang}")
            submit(page)
            check(page, f"preferences-saved.{lang}")
            erased = site.link("preferences", people["delete"], site.newsletter)
            page.goto(f"{erased}/delete?lang={lang}")
            check(page, f"delete.{lang}")
            submit(page)
            check(page, f"deleted.{lang}")

            confirm = site.link("confirm", people["confirm"])
            page.goto(f"{confirm}?lang={lang}")
            check(page, f"confirm.{lang}")
            submit(page)
            check(page, f"confirmed.{lang}")
            page.goto(site.link("confirm", people["confirm"], issued_at=clock.now() - timedelta(days=8)) + f"?lang={lang}")
            check(page, f"renew.{lang}")

            answer = site.link("rsvp", people["rsvp"], site.invitation)
            page.goto(f"{answer}?answer=perhaps&lang={lang}")  # not an answer: the page asks to choose one
            check(page, f"rsvp-invalid.{lang}")
            page.goto(f"{answer}?answer=maybe&lang={lang}")
            check(page, f"rsvp.{lang}")
            submit(page)
            check(page, f"rsvp-answered.{lang}")

        for path, name in (("/u/not-a-link", "refused"), (f"/p/{erased.rpartition('/')[2]}", "missing"),
                           (site.signer.test_links(site.url, ["unsubscribe"])["unsubscribe"].removeprefix(site.url),
                            "test-copy")):
            page.goto(site.url + path)
            check(page, name)
    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)


# ---- the subscribe form, for a reader who cannot see the page ---------------------------------------

_FORM_STATE_JS = """() => ({
  focused: document.activeElement ? document.activeElement.id : null,
  invalid: [...document.querySelectorAll('[aria-invalid="true"]')].map(element => element.id),
  describedBy: Object.fromEntries([...document.querySelectorAll('main [aria-describedby]')]
                                  .map(element => [element.id, element.getAttribute('aria-describedby')])),
  error: (document.getElementById('form-error') || {textContent: ''}).textContent.trim(),
  email: document.querySelector('#email').value,
  consent: document.querySelector('#consent').checked,
})"""
_REQUIRED_MARKS_JS = """() => [...document.querySelectorAll('input[required]')].map(input => {
  const mark = document.querySelector(`label[for="${input.id}"] .required`);
  return [input.id, mark && mark.getClientRects().length ? mark.innerText.trim() : null];
})"""


@pytest.mark.parametrize("lang", ["ro", "en"])
def test_a_subscribe_error_is_tied_to_its_own_field_which_gets_the_focus_and_the_title_says_error(browser, site, lang):
    words = load_catalogues(site.settings.templates_dir)[lang].strings["web"]
    org = site.settings.org_name
    error_title = f"{words['error_title'].format(title=words['subscribe_title'].format(org=org))} · {org}"
    with site_page(browser, site.url, 375) as visit:
        page = visit.page
        page.goto(f"{site.url}/subscribe?lang={lang}")
        assert page.evaluate(_REQUIRED_MARKS_JS) == [["email", words["required"]], ["consent", words["required"]]]
        # The mark is seen, not heard: a screen reader says "required" from the attribute, once.
        assert page.get_by_role("textbox", name=words["field_email"], exact=True).count() == 1
        assert page.get_by_role("checkbox", name=words["subscribe_consent"].format(org=org), exact=True).count() == 1

        def refused(field: str, error: str, email: str, consent: bool) -> None:
            """Send the form; the server refuses it for `field`, the one marked invalid, described and focused."""
            submit(page)
            assert page.title() == error_title
            # `autofocus` acts once the document is ready, a moment after the navigation: wait for it, briefly.
            page.wait_for_function("() => document.activeElement && document.activeElement.id !== ''", timeout=5000)
            assert page.evaluate(_FORM_STATE_JS) == {
                "focused": field, "invalid": [field], "describedBy": {field: "form-error"}, "error": words[error],
                "email": email, "consent": consent}

        page.fill("#email", "someone@localhost")  # a browser takes it; the server cannot write to it
        page.check("#consent")
        refused("email", "error_email", "someone@localhost", consent=True)
        # The consent wording changed while the form was open: the agreement given was to other words.
        page.fill("#email", "someone@example.org")
        page.evaluate("document.querySelector('#consent').value = 'an older wording'")
        refused("consent", "error_consent", "someone@example.org", consent=False)
        assert page_problems(page, site.settings.templates_dir) == []
