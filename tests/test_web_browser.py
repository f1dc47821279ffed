"""The subscribers' pages walked as a person would, in Chromium, from the links of a message really sent.

One real campaign per module: 30 fictional people seeded through the importer, a `herald worker`
subprocess, Redis and the SMTP sink (tests/engine.py), with HERALD_BASE_URL pointing at the real web
app served by uvicorn (tests/live_server.py). The tests take messages out of the sink, open their
links in the browser, click and type, and check the pages, the database, keyboard use, labels,
contrast and a phone's width. SQLite only: the store itself is tested on both backends elsewhere.

Screenshots go to <artifacts>/web/<page>.<lang>.<width>.png ($HERALD_ARTIFACTS_DIR, else
tests/artifacts); the refusal page speaks both languages at once, so it is `refused.ro-en.<width>.png`.
"""

from __future__ import annotations

import html as htmllib
import re
import shutil
from dataclasses import dataclass, replace
from email.message import EmailMessage

import pytest
from browser import artifacts_dir, normalise_space, screenshot
from engine import running_engine, seed
from live_server import SitePage, live_server, site_page
from sqlalchemy.engine import make_url

from subscribers.db import open_store
from subscribers.models import Subscriber
from worker.content import load_item
from worker.i18n import load_catalogues
from worker.settings import PROJECT_ROOT, load_settings

NEWSLETTER = "newsletters/2027-01-uia-transfer-networks"
SEGMENT = "calls-for-proposals"  # chosen by topic, so the page offers "only this topic" beside "all messages"
PEOPLE = 30  # with this seed: 6 en, 3 ro and 3 both in the segment, all confirmed and named
WIDTHS = (375, 1024)
OVERFLOW_TOLERANCE_PX = 1  # sub-pixel rounding of scrollWidth
MIN_CONTRAST = 4.5  # WCAG 2 AA for normal-size text
# Which recipient of each language a test may change (unsubscribe, undo); pages that only look use any.
FLOW_PERSON = {375: 0, 1024: 1}
KEYBOARD_PERSON = 2


@dataclass(frozen=True)
class Mail:
    subscriber_id: int
    email: str
    name: str
    language: str  # the subscriber's: ro, en or both
    message: EmailMessage

    @property
    def page_language(self) -> str:
        return "en" if self.language == "en" else "ro"  # `both` reads Romanian first

    @property
    def unsubscribe_url(self) -> str:
        header = str(self.message["List-Unsubscribe"])
        return next(url for url in ("".join(part.split()) for part in re.findall(r"<([^>]+)>", header))
                    if not url.startswith("mailto:"))

    @property
    def view_url(self) -> str:
        body = self.message.get_body(("html",)).get_content()
        urls = [htmllib.unescape(href) for href in re.findall(r'href="([^"]+)"', body) if "/m/" in href]
        assert urls, "the HTML part has no view-in-browser link"
        assert len(set(urls)) == 1, f"one view-in-browser URL per message, not {set(urls)}"
        return urls[0]


@dataclass
class Site:
    url: str
    settings: object
    campaign_id: int
    mails: dict[str, list[Mail]]  # by the subscriber's language
    sessions: object

    def mail(self, language: str, index: int) -> Mail:
        return self.mails[language][index]

    def person(self, subscriber_id: int) -> tuple[str, object]:
        with self.sessions() as session:
            subscriber = session.get(Subscriber, subscriber_id)
            return subscriber.status, subscriber.unsubscribed_at


@pytest.fixture(scope="module")
def site(tmp_path_factory, migrated_template, redis_server):
    """The live web app, and one campaign of the newsletter sent through it to SEGMENT by a real worker."""
    workdir = tmp_path_factory.mktemp("web-browser")
    database = workdir / "data" / "herald.sqlite3"
    database.parent.mkdir(parents=True)
    shutil.copyfile(make_url(migrated_template("sqlite")).database, database)
    settings = replace(load_settings(), content_dir=PROJECT_ROOT / "content", templates_dir=PROJECT_ROOT / "templates",
                       outbox_dir=workdir / "outbox", data_dir=workdir / "data", database_url=f"sqlite:///{database}")
    seed(settings, PEOPLE)
    with live_server(settings) as server:
        with running_engine(server.settings, redis_server.url, workdir, HERALD_BASE_URL=server.url) as engine:
            engine.start_worker(concurrency=1)
            campaign_id = engine.send(f"content/{NEWSLETTER}", "--segment", SEGMENT)
            engine.wait_state(campaign_id, "sent", seconds=120)
            people = engine.mailable(SEGMENT)
            messages = engine.received(campaign_id)
        assert len(messages) == len(people) > 0
        mails: dict[str, list[Mail]] = {"ro": [], "en": [], "both": []}
        for message in messages:
            person = people[message["To"].addresses[0].addr_spec.lower()]
            mails[person.language].append(Mail(person.id, person.email, person.name, person.language, message))
        for language, found in mails.items():
            found.sort(key=lambda mail: mail.subscriber_id)
            assert len(found) >= 3, f"the seed gave only {len(found)} {language} recipients in {SEGMENT}"
        sessions = open_store(server.settings)
        try:
            yield Site(server.url, server.settings, campaign_id, mails, sessions)
        finally:
            sessions.kw["bind"].dispose()


@pytest.fixture(scope="module")
def words(site) -> dict[str, dict[str, str]]:
    """The web pages' words (templates/i18n/*.yaml, key `web`) and the greeting, by language."""
    catalogues = load_catalogues(site.settings.templates_dir)
    return {language: {**catalogue.strings["web"], "greeting": catalogue.strings["greeting"]}
            for language, catalogue in catalogues.items()}


# --- what every page is checked for ----------------------------------------------------------

_CONTRAST_JS = """() => {
  const parse = c => { const m = /rgba?\\(([^)]+)\\)/.exec(c); if (!m) return null;
    const p = m[1].split(/[\\s,\\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const over = (top, bottom) => ({r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
                                  b: top.b * top.a + bottom.b * (1 - top.a), a: 1});
  const lum = c => { const f = v => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const ratio = (x, y) => { const [hi, lo] = [lum(x), lum(y)].sort((p, q) => q - p); return (hi + 0.05) / (lo + 0.05); };
  const backdrop = el => { const layers = [];
    for (let e = el; e; e = e.parentElement) { const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; } }
    return layers.reverse().reduce((below, layer) => over(layer, below), {r: 255, g: 255, b: 255, a: 1}); };
  const hex = c => '#' + [c.r, c.g, c.b].map(v => Math.round(v).toString(16).padStart(2, '0')).join('');
  const found = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (![...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim())) continue;
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || !el.getClientRects().length) continue;
    const bg = backdrop(el), fg = over(parse(style.color), bg);
    found.push({element: el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''),
                text: el.textContent.trim().replace(/\\s+/g, ' ').slice(0, 40),
                color: hex(fg), background: hex(bg), ratio: Math.round(ratio(fg, bg) * 100) / 100});
  }
  return found;
}"""

_UNLABELLED_JS = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden')
  .filter(el => !el.id || !document.querySelector(`label[for="${CSS.escape(el.id)}"]`)
                || !document.querySelector(`label[for="${CSS.escape(el.id)}"]`).textContent.trim())
  .map(el => el.outerHTML)"""


def check_page(visit: SitePage, width: int, lang: str) -> None:
    """What a reader of any of these pages relies on: its language, its width, contrast, labels, a CSP that holds."""
    page = visit.page
    assert page.evaluate("document.documentElement.lang") == lang
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width + OVERFLOW_TOLERANCE_PX, f"{page.url} scrolls sideways at {width}px: {scroll_width}px"
    texts = page.evaluate(_CONTRAST_JS)
    assert texts, "no text found to measure"
    low = [text for text in texts if text["ratio"] < MIN_CONTRAST]
    assert not low, f"text below {MIN_CONTRAST}:1 contrast: {low}"
    assert page.evaluate(_UNLABELLED_JS) == [], "every input has a <label for=its id> with words in it"
    assert visit.csp_violations() == [], visit.csp_violations()
    assert page.evaluate("document.styleSheets.length") >= 1 and page.evaluate(
        "getComputedStyle(document.body).marginTop") == "0px", "the stylesheet loaded (under the CSP)"


def shot(visit: SitePage, name: str, lang: str, width: int) -> None:
    screenshot(visit.page, artifacts_dir("web") / f"{name}.{lang}.{width}.png")


def heading(page) -> str:
    return normalise_space(page.locator("h1").first.inner_text())


# --- Flow 1: unsubscribe from a real message's List-Unsubscribe link, then undo -----------------

@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("language", ["en", "ro"])
def test_unsubscribing_from_a_sent_message_and_taking_it_back(browser, site, words, language, width):
    mail = site.mail(language, FLOW_PERSON[width])
    w = words[language]
    assert mail.unsubscribe_url.startswith(f"{site.url}/u/"), "List-Unsubscribe leads to this server"
    with site_page(browser, site.url, width) as visit:
        page = visit.page
        response = page.goto(mail.unsubscribe_url)
        assert response.status == 200
        check_page(visit, width, language)
        assert heading(page) == w["unsubscribe_title"]
        assert page.title() == f"{w['unsubscribe_title']} · {site.settings.org_name}"
        assert mail.email in page.locator("main").inner_text()
        assert page.get_by_label(w["unsubscribe_everything"], exact=True).is_checked()
        assert page.locator("#scope-topics").count() == 1, "the message chose by topic: 'only this topic' is offered"
        shot(visit, "unsubscribe", language, width)
        assert site.person(mail.subscriber_id) == ("confirmed", None), "opening the page changes nothing"

        page.get_by_label(w["unsubscribe_everything"], exact=True).check()
        with page.expect_navigation() as done:
            page.get_by_role("button", name=w["unsubscribe_button"], exact=True).click()
        assert done.value.status == 200
        check_page(visit, width, language)
        assert heading(page) == w["unsubscribed_title"]
        assert normalise_space(page.get_by_role("status").inner_text()) == w["unsubscribed_everything"].format(
            org=site.settings.org_name, email=mail.email)
        undo = page.get_by_role("button", name=w["undo_button"], exact=True)
        assert undo.is_visible()
        shot(visit, "unsubscribed", language, width)
        status, unsubscribed_at = site.person(mail.subscriber_id)
        assert status == "unsubscribed" and unsubscribed_at is not None

        with page.expect_navigation() as undone:
            undo.click()
        assert undone.value.status == 200
        check_page(visit, width, language)
        assert heading(page) == w["undone_title"]
        assert normalise_space(page.get_by_role("status").inner_text()) == w["undone_text"]
        shot(visit, "undone", language, width)
        assert site.person(mail.subscriber_id) == ("confirmed", None)


# --- Flow 4: the message's "view in browser" link -----------------------------------------------

@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("language", ["en", "ro"])
def test_view_in_browser_shows_the_message_as_it_was_sent(browser, site, words, language, width):
    mail = site.mail(language, 0)
    text = load_item(site.settings.content_dir / NEWSLETTER).text(language)
    assert mail.view_url.startswith(f"{site.url}/m/")
    with site_page(browser, site.url, width) as visit:
        page = visit.page
        response = page.goto(mail.view_url)
        assert response.status == 200
        policy = response.headers["content-security-policy"]
        assert "img-src https: data:" in policy and "form-action 'none'" in policy
        assert page.evaluate("document.documentElement.lang") == language
        assert page.title() == mail.message["Subject"]
        body = normalise_space(page.locator("body").inner_text())
        assert normalise_space(text.front.subject) in body, "the title is shown, not only in <title>"
        assert words[language]["greeting"].format(name=mail.name) in body
        assert mail.email not in page.url
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= width + OVERFLOW_TOLERANCE_PX, f"the message scrolls sideways at {width}px"
        # The network stops at this server, so an https image cannot load; but the CSP let it be asked for.
        images = [src for src in page.evaluate("[...document.images].map(i => i.src)") if src.startswith("https:")]
        assert images, "the newsletter shows https images"
        assert set(images) <= set(visit.aborted), "the CSP allowed the https images (the router saw them)"
        assert visit.csp_violations() == [], visit.csp_violations()
        shot(visit, "view", language, width)


# --- The language switch ---------------------------------------------------------------------------

@pytest.mark.parametrize("language", ["en", "ro", "both"])
def test_the_language_switch_changes_the_page_language(browser, site, words, language):
    mail = site.mail(language, 0)
    first = mail.page_language
    other = "ro" if first == "en" else "en"
    with site_page(browser, site.url, 1024) as visit:
        page = visit.page
        page.goto(mail.unsubscribe_url)
        assert page.evaluate("document.documentElement.lang") == first
        switch = page.locator("header a.switch")
        assert switch.get_attribute("hreflang") == other and switch.get_attribute("lang") == other
        assert switch.inner_text().strip() == words[first]["language_switch"]
        with page.expect_navigation():
            switch.click()
        check_page(visit, 1024, other)
        assert heading(page) == words[other]["unsubscribe_title"]
        assert page.get_by_role("button", name=words[other]["unsubscribe_button"], exact=True).is_visible()
        assert page.locator("form").get_attribute("action").endswith(f"?lang={other}"), "the answer stays in it"
        with page.expect_navigation():
            page.locator("header a.switch").click()
        assert page.evaluate("document.documentElement.lang") == first
        assert heading(page) == words[first]["unsubscribe_title"]
    assert site.person(mail.subscriber_id) == ("confirmed", None)


# --- A tampered link ------------------------------------------------------------------------------

def _tamper(url: str, how: str) -> str:
    base, token = url.rsplit("/", 1)
    payload, mac = token.split(".")
    if how == "signature":  # a different, well-formed MAC: the first character's 6 bits all count
        return f"{base}/{payload}.{'B' if mac[0] == 'A' else 'A'}{mac[1:]}"
    return f"{base}/{token[:-5]}"  # cut short, as a mail client wrapping a long line does


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("how", "status"), [("signature", 403), ("truncated", 400)])
def test_a_tampered_link_shows_the_bilingual_refusal(browser, site, words, how, status, width):
    mail = site.mail("en", 0)
    with site_page(browser, site.url, width) as visit:
        page = visit.page
        response = page.goto(_tamper(mail.unsubscribe_url, how) + "?lang=en")
        assert response.status == status
        check_page(visit, width, "ro")
        sections = page.locator("main > section")
        assert sections.count() == 2
        for index, language in enumerate(("ro", "en")):
            section = sections.nth(index)
            assert section.get_attribute("lang") == language
            assert normalise_space(section.locator("h1").inner_text()) == words[language]["refused_title"]
            assert words[language]["refused_text"] in normalise_space(section.inner_text())
        assert mail.email not in page.locator("body").inner_text(), "a refused link tells nothing about its owner"
        assert page.locator("form, a.switch").count() == 0
        if how == "signature":
            shot(visit, "refused", "ro-en", width)
    assert site.person(mail.subscriber_id) == ("confirmed", None)


# --- Keyboard and accessibility ---------------------------------------------------------------------

_FOCUSED_JS = """() => { const el = document.activeElement, style = getComputedStyle(el);
  return {tag: el.tagName.toLowerCase(), id: el.id, type: el.type || '', checked: !!el.checked,
          text: (el.innerText || '').trim(), outlineStyle: style.outlineStyle,
          outlineWidth: parseFloat(style.outlineWidth), focusVisible: el.matches(':focus-visible')}; }"""


def _tab(page, backwards: bool = False) -> dict:
    page.keyboard.press("Shift+Tab" if backwards else "Tab")
    return page.evaluate(_FOCUSED_JS)


def _visibly_focused(focused: dict) -> None:
    assert focused["focusVisible"], f"{focused} does not match :focus-visible"
    assert focused["outlineStyle"] != "none" and focused["outlineWidth"] >= 2, f"no visible focus outline: {focused}"


@pytest.mark.parametrize("language", ["en", "ro"])
def test_the_unsubscribe_page_works_from_the_keyboard_alone(browser, site, words, language):
    mail = site.mail(language, KEYBOARD_PERSON)
    w = words[language]
    with site_page(browser, site.url, 1024) as visit:
        page = visit.page
        page.goto(mail.unsubscribe_url)
        check_page(visit, 1024, language)

        stops = []
        for _ in range(8):  # switch link, the radio group, the button, the footer's address
            stops.append(_tab(page))
            _visibly_focused(stops[-1])
            if stops[-1]["tag"] == "button":
                break
        assert [stop["tag"] for stop in stops] == ["a", "input", "button"], stops
        radio, button = stops[1], stops[2]
        assert (radio["type"], radio["id"], radio["checked"]) == ("radio", "scope-everything", True)
        assert button["text"] == w["unsubscribe_button"]

        # Within the radio group the arrow keys move, and choose; Tab leaves the group.
        assert _tab(page, backwards=True)["id"] == "scope-everything"
        page.keyboard.press("ArrowUp")
        topics = page.evaluate(_FOCUSED_JS)
        assert (topics["id"], topics["checked"]) == ("scope-topics", True)
        _visibly_focused(topics)
        page.keyboard.press("ArrowDown")
        assert page.evaluate(_FOCUSED_JS)["id"] == "scope-everything"
        assert page.get_by_label(w["unsubscribe_everything"], exact=True).is_checked()

        # Enter on the button unsubscribes; the undo button is the next Tab stop, and Space presses it.
        assert _tab(page)["tag"] == "button"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert heading(page) == w["unsubscribed_title"]
        assert site.person(mail.subscriber_id)[0] == "unsubscribed"
        while (focused := _tab(page))["tag"] != "button":
            assert focused["tag"] == "a", f"Tab reached {focused} before the undo button"
        assert focused["text"] == w["undo_button"]
        _visibly_focused(focused)
        with page.expect_navigation():
            page.keyboard.press("Space")
        assert heading(page) == w["undone_title"]
        check_page(visit, 1024, language)
    assert site.person(mail.subscriber_id) == ("confirmed", None)
