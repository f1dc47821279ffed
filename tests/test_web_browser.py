"""The subscribers' pages walked as a person would, in Chromium, from the links of a message really sent.

One real campaign per module: 36 fictional people seeded through the importer, a `herald worker`
subprocess, Redis and the SMTP sink (tests/engine.py), with HERALD_BASE_URL pointing at the real web
app served by uvicorn (tests/live_server.py). The tests take messages out of the sink, open their
links in the browser, click and type, and check the pages, the database, keyboard use, labels,
contrast and a phone's width. SQLite only: the store itself is tested on both backends elsewhere.

The worker keeps running for the whole module: a preference changed in the browser is checked in the
next campaign's message, and the subscribe form's confirmation email (started by the form at once,
through the same Redis) is taken out of the sink and its link opened.

Screenshots go to <artifacts>/web/<page>.<lang>.<width>.png ($HERALD_ARTIFACTS_DIR, else
tests/artifacts); the refusal page speaks both languages at once, so it is `refused.ro-en.<width>.png`.
"""

from __future__ import annotations

import email
import email.policy
import html as htmllib
import json
import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from broker import forget_connections
from browser import VIEWPORT_HEIGHT, artifacts_dir, normalise_space, screenshot
from engine import Engine, running_engine, seed
from live_server import SitePage, live_server, site_page, sqlite_settings
from sqlalchemy import select
from sqlalchemy.engine import make_url

from foundation.db import open_store
from subscribers import selfservice, store
from subscribers.models import Consent, Subscriber
from subscribers.topics import load_topics
from worker.authoring.content import load_item
from worker.campaigns.celery_app import app as celery_app
from worker.rendering.i18n import load_catalogues

NEWSLETTER = "newsletters/2027-01-uia-transfer-networks"
SEGMENT = "calls-for-proposals"  # chosen by topic, so the page offers "only this topic" beside "all messages"
PEOPLE = 36  # with this seed: 7 en, 5 ro and 3 both in the segment, all confirmed and named
WIDTHS = (375, 1024)
OVERFLOW_TOLERANCE_PX = 1  # sub-pixel rounding of scrollWidth
MIN_CONTRAST = 4.5  # WCAG 2 AA for normal-size text
# Which recipient of each language a test may change (unsubscribe, undo); pages that only look use any.
FLOW_PERSON = {375: 0, 1024: 1}
KEYBOARD_PERSON = 2
# The preference centre changes people from the fourth on (index 3) and erases the last of each language.
FIRST_FREE_PERSON = 3


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
        return html_link(self.message, "/m/", "view-in-browser")

    @property
    def preferences_url(self) -> str:
        return html_link(self.message, "/p/", "Manage preferences")

    @property
    def edition(self) -> str:
        return feedback(self.message)[2]


def html_link(message: EmailMessage, part: str, what: str) -> str:
    """The one URL of the HTML part's links that contains `part` (a message may repeat it, always the same)."""
    body = message.get_body(("html",)).get_content()
    urls = [htmllib.unescape(href) for href in re.findall(r'href="([^"]+)"', body) if part in href]
    assert urls, f"the HTML part has no {what} link"
    assert len(set(urls)) == 1, f"one {what} URL per message, not {set(urls)}"
    return urls[0]


def feedback(message: EmailMessage) -> list[str]:
    """The Feedback-ID's fields: campaign-N, the message, the edition, herald."""
    return str(message["Feedback-ID"]).split(":")


def addressee(message: EmailMessage) -> str:
    return message["To"].addresses[0].addr_spec.lower()


@dataclass
class Site:
    url: str
    settings: object
    campaign_id: int
    mails: dict[str, list[Mail]]  # by the subscriber's language
    sessions: object
    engine: Engine  # still running: its worker sends the module's later campaigns and confirmations

    def mail(self, language: str, index: int) -> Mail:
        return self.mails[language][index]

    def person(self, subscriber_id: int) -> tuple[str, object]:
        with self.sessions() as session:
            subscriber = session.get(Subscriber, subscriber_id)
            return subscriber.status, subscriber.unsubscribed_at

    def topics(self, subscriber_id: int) -> list[str]:
        with self.sessions() as session:
            return selfservice.topics_of(session, subscriber_id)

    def profile(self, email_address: str) -> dict | None:
        """What the store holds of an address now (None: nobody), topics and consents included."""
        with self.sessions() as session:
            subscriber = store.find(session, email_address)
            if subscriber is None:
                return None
            consents = session.scalars(select(Consent).where(Consent.subscriber_id == subscriber.id)
                                       .order_by(Consent.id)).all()
            return {"id": subscriber.id, "status": subscriber.status, "language": subscriber.language,
                    "name": subscriber.name, "organisation": subscriber.organisation,
                    "organisation_type": subscriber.organisation_type, "confirmed_at": subscriber.confirmed_at,
                    "topics": selfservice.topics_of(session, subscriber.id),
                    "consents": [{"channel": consent.channel, "purpose": consent.purpose, "source": consent.source,
                                  "text_version": consent.text_version} for consent in consents]}

    def suppressed(self, email_address: str) -> bool:
        with self.sessions() as session:
            return store.is_suppressed(session, self.settings.secret_key, email_address)

    def inbox(self, email_address: str, message: str) -> list[EmailMessage]:
        """What the sink holds for one address of one kind of message (the Feedback-ID's second field)."""
        found = []
        for path in sorted(self.settings.outbox_dir.glob("*.eml")):
            parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if addressee(parsed) == email_address.lower() and feedback(parsed)[1] == message:
                found.append(parsed)
        return found


@pytest.fixture(scope="module")
def site(tmp_path_factory, migrated_template, redis_server):
    """The live web app, and one campaign of the newsletter sent through it to SEGMENT by a real worker.

    The worker stays up for the module. The web app counts its rate limits in the test Redis, and the
    Celery app of this process (which the subscribe form uses to start the confirmation campaign at
    once) publishes to it too, so the form's confirmation reaches the same worker.
    """
    workdir = tmp_path_factory.mktemp("web-browser")
    settings = sqlite_settings(workdir, make_url(migrated_template("sqlite")).database, redis_server.url)
    seed(settings, PEOPLE)
    import worker.campaigns.tasks  # noqa: F401 - registers herald.start, which the subscribe form enqueues

    broker_before = celery_app.conf.broker_url
    celery_app.conf.broker_url = redis_server.url
    forget_connections()
    try:
        with live_server(settings) as server, running_engine(server.settings, redis_server.url, workdir,
                                                             HERALD_BASE_URL=server.url) as engine:
            engine.start_worker(concurrency=1)
            campaign_id = engine.send(f"content/{NEWSLETTER}", "--segment", SEGMENT)
            engine.wait_state(campaign_id, "sent", seconds=120)
            people = engine.mailable(SEGMENT)
            messages = engine.received(campaign_id)
            assert len(messages) == len(people) > 0
            mails: dict[str, list[Mail]] = {"ro": [], "en": [], "both": []}
            for message in messages:
                person = people[addressee(message)]
                mails[person.language].append(Mail(person.id, person.email, person.name, person.language, message))
            for language, found in mails.items():
                found.sort(key=lambda mail: mail.subscriber_id)
                assert len(found) >= 3, f"the seed gave only {len(found)} {language} recipients in {SEGMENT}"
            for language in ("en", "ro"):
                assert len(mails[language]) >= FIRST_FREE_PERSON + 2, f"too few {language} people to change"
            sessions = open_store(server.settings)
            try:
                yield Site(server.url, server.settings, campaign_id, mails, sessions, engine)
            finally:
                sessions.kw["bind"].dispose()
    finally:
        celery_app.conf.broker_url = broker_before
        forget_connections()


@pytest.fixture(scope="module")
def words(site) -> dict[str, dict[str, str]]:
    """The web pages' words (templates/i18n/*.yaml, key `web`) and the greeting, by language."""
    catalogues = load_catalogues(site.settings.templates_dir)
    return {language: {**catalogue.strings["web"], "greeting": catalogue.strings["greeting"],
                       "confirm_subject": catalogue.strings["confirm_subject"]}
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


def look(visit: SitePage, name: str, lang: str, width: int) -> None:
    """`check_page` and a screenshot at every width (the page resized, not reloaded); back to `width` after."""
    for each in WIDTHS:
        visit.page.set_viewport_size({"width": each, "height": VIEWPORT_HEIGHT})
        check_page(visit, each, lang)
        shot(visit, name, lang, each)
    visit.page.set_viewport_size({"width": width, "height": VIEWPORT_HEIGHT})


def status_text(page) -> str:
    return normalise_space(page.get_by_role("status").inner_text())


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


def tab_stops(page, limit: int = 40) -> list[dict]:
    """Every Tab stop of the page from the top, each checked for a visible focus, until focus leaves the page."""
    stops: list[dict] = []
    for _ in range(limit):
        focused = _tab(page)
        if focused["tag"] == "body" or (stops and focused == stops[0]):
            return stops
        _visibly_focused(focused)
        stops.append(focused)
    raise AssertionError(f"more than {limit} Tab stops: {stops}")


# --- Flow 2: the message's "Manage preferences" link, and the next campaign --------------------------

CLIMATE = "climate-neutral-cities"
SECOND_NEWSLETTER = "newsletters/2027-02-capacities-cinema"
SECOND_SEGMENT = "topic-climate-neutral-cities"  # chosen by topic: only a topic ticked in the form lets them in
MOVES = (("en", "ro", 375), ("ro", "en", 1024))  # from, to, the width the person works at


def test_preferences_changed_in_the_browser_reach_the_next_message(browser, site, words):
    catalogue = load_topics(site.settings.content_dir)
    organisation = "Asociația Municipiilor din România, filiala Iași"
    changed: list[tuple[Mail, str, list[str]]] = []
    for old, new, width in MOVES:
        candidates = site.mails[old][FIRST_FREE_PERSON:-1]
        mail = next((mail for mail in candidates if CLIMATE not in site.topics(mail.subscriber_id)), None)
        assert mail is not None, f"no {old} recipient without {CLIMATE} to add it for"
        assert mail.edition == old, "the first campaign reached them in their language"
        held = site.topics(mail.subscriber_id)
        # Drop every topic held; tick the climate topic (it lets them into SECOND_SEGMENT) and one more.
        wanted = sorted({CLIMATE, next(slug for slug in catalogue if slug not in held and slug != CLIMATE)})
        w, w_new = words[old], words[new]
        url = mail.preferences_url
        assert url.startswith(f"{site.url}/p/"), "the message's preferences link leads to this server"
        with site_page(browser, site.url, width) as visit:
            page = visit.page
            response = page.goto(url)
            assert response.status == 200 and response.headers["x-frame-options"] == "DENY"
            assert heading(page) == w["preferences_title"]
            assert page.title() == f"{w['preferences_title']} · {site.settings.org_name}"
            assert mail.email in page.locator("main").inner_text()
            assert page.get_by_label(w[f"language_{old}"], exact=True).is_checked()
            ticked = [slug for slug in catalogue if page.locator(f"#topic-{slug}").is_checked()]
            assert ticked == [slug for slug in catalogue if slug in held], "the form shows the topics held"
            assert page.get_by_label(w["preferences_name"], exact=True).input_value() == mail.name
            look(visit, "preferences", old, width)
            stops = [stop["id"] for stop in tab_stops(page)]
            expected = [f"language-{old}", *(f"topic-{slug}" for slug in catalogue), "name", "organisation"]
            assert [stop for stop in stops if stop] == expected, f"Tab order {stops}"
            assert site.profile(mail.email)["language"] == old, "opening the page changes nothing"

            page.get_by_label(w[f"language_{new}"], exact=True).check()
            for slug, topic in catalogue.items():
                page.get_by_label(topic.names[old], exact=True).set_checked(slug in wanted)
            page.get_by_label(w["preferences_organisation"], exact=True).fill(organisation)
            with page.expect_navigation() as saved:
                page.get_by_role("button", name=w["preferences_save"], exact=True).click()
            assert saved.value.status == 200
            check_page(visit, width, new)
            assert heading(page) == w_new["preferences_title"], "the answer is in the language just chosen"
            assert status_text(page) == w_new["preferences_saved"]
            assert page.get_by_label(w_new[f"language_{new}"], exact=True).is_checked()
            assert sorted(slug for slug in catalogue if page.locator(f"#topic-{slug}").is_checked()) == wanted
            assert page.get_by_label(w_new["preferences_organisation"], exact=True).input_value() == organisation
            look(visit, "preferences-saved", new, width)

            with page.expect_download() as download:
                page.get_by_role("link", name=w_new["data_download"], exact=True).click()
            assert download.value.suggested_filename == "herald-my-data.json"
            record = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
            assert (record["email"], record["language"]) == (mail.email, new)
            assert sorted(topic["slug"] for topic in record["topics"]) == wanted

        held_now = site.profile(mail.email)
        assert (held_now["language"], held_now["topics"], held_now["name"], held_now["organisation"],
                held_now["status"]) == (new, wanted, mail.name, organisation, "confirmed")
        changed.append((mail, new, wanted))

    # The next campaign, through the same worker and the ledger, reaches them in the new language.
    engine = site.engine
    item = load_item(site.settings.content_dir / SECOND_NEWSLETTER)
    subjects = {language: item.text(language).front.subject for language in ("en", "ro")}
    assert subjects["en"] != subjects["ro"]
    campaign_id = engine.send(f"content/{SECOND_NEWSLETTER}", "--segment", SECOND_SEGMENT)
    engine.wait_state(campaign_id, "sent", seconds=60)
    messages = engine.received(campaign_id)
    assert len(messages) == len(engine.mailable(SECOND_SEGMENT))
    for mail, new, _ in changed:
        theirs = [message for message in messages if addressee(message) == mail.email.lower()]
        assert len(theirs) == 1, f"{mail.email} got {len(theirs)} messages of campaign {campaign_id}"
        message = theirs[0]
        assert feedback(message)[:3] == [f"campaign-{campaign_id}", "newsletter", new]
        assert message["Subject"] == subjects[new]
        body = message.get_body(("html",)).get_content()
        assert re.search(rf'<html[^>]*\blang="{new}"', body), "the HTML part is in the new language"
        assert words[new]["greeting"].format(name=htmllib.escape(mail.name)) in body
        assert html_link(message, "/p/", "Manage preferences").startswith(f"{site.url}/p/")


# --- Erasure asks first ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("language", "width"), [("en", 1024), ("ro", 375)])
def test_the_delete_page_asks_first_and_erases_only_on_yes(browser, site, words, language, width):
    mail = site.mail(language, -1)
    w = words[language]
    before = site.profile(mail.email)
    with site_page(browser, site.url, width) as visit:
        page = visit.page
        page.goto(mail.preferences_url)
        with page.expect_navigation():
            page.get_by_role("link", name=w["delete_link"], exact=True).click()
        assert heading(page) == w["delete_title"]
        assert mail.email in page.locator("main").inner_text()
        look(visit, "delete", language, width)
        stops = tab_stops(page)
        assert [(stop["tag"], stop["text"]) for stop in stops[1:3]] == [("button", w["delete_button"]),
                                                                       ("a", w["delete_keep"])], stops
        assert site.profile(mail.email) == before, "the question changes nothing"

        if language == "ro":  # the way back
            with page.expect_navigation():
                page.get_by_role("link", name=w["delete_keep"], exact=True).click()
            assert heading(page) == w["preferences_title"]
            check_page(visit, width, language)
            assert site.profile(mail.email) == before
            return

        with page.expect_navigation() as done:
            page.get_by_role("button", name=w["delete_button"], exact=True).click()
        assert done.value.status == 200
        check_page(visit, width, language)
        assert heading(page) == w["deleted_title"] and status_text(page) == w["deleted_text"]
        shot(visit, "deleted", language, width)
        assert site.profile(mail.email) is None and site.suppressed(mail.email)
        gone = page.goto(mail.preferences_url)
        assert gone.status == 404 and mail.email not in page.locator("body").inner_text()
        assert [normalise_space(h) for h in page.locator("h1").all_inner_texts()] == [
            words["ro"]["missing_title"], words["en"]["missing_title"]]


# --- Flow 3: the subscribe form, the confirmation email, the confirm page -------------------------------

NEWCOMER_NAME = "Ștefania Țăranu-Șincai"
NEWCOMER_ORGANISATION = "Asociația „Orașe Vii” Brașov"
NEWCOMER_TOPICS = ("transfer-networks", "creative-industries")
# page language -> (the subscription's language, the width the person works at)
NEWCOMERS = {"en": ("en", 375), "ro": ("both", 1024)}


@pytest.mark.parametrize("language", ["en", "ro"])
def test_subscribing_in_the_browser_and_confirming_from_the_email(browser, site, words, language):
    chosen, width = NEWCOMERS[language]
    w = words[language]
    org = site.settings.org_name
    address = f"stefania.taranu.{language}@example.net"
    consent = w["subscribe_consent"].format(org=org)
    catalogue = load_topics(site.settings.content_dir)
    assert site.profile(address) is None
    with site_page(browser, site.url, width) as visit:
        page = visit.page
        response = page.goto(f"{site.url}/subscribe")
        assert response.status == 200
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        if page.evaluate("document.documentElement.lang") != language:
            with page.expect_navigation():
                page.locator("header a.switch").click()
            assert page.url.endswith(f"?lang={language}")
        assert heading(page) == w["subscribe_title"].format(org=org)
        assert page.title() == f"{w['subscribe_title'].format(org=org)} · {org}"
        look(visit, "subscribe", language, width)
        stops = tab_stops(page)
        ids = [stop["id"] for stop in stops if stop["id"]]
        assert ids == ["email", "name", "organisation", "organisation_type", f"language-{language}",
                       *(f"topic-{slug}" for slug in catalogue), "consent"], f"Tab order {stops}"
        assert any(stop["tag"] == "button" and stop["text"] == w["subscribe_button"] for stop in stops)

        # Required fields carry a visible mark that is not part of their name (it is aria-hidden).
        page.get_by_role("textbox", name=w["field_email"], exact=True).fill(address)
        page.get_by_label(w["preferences_name"], exact=True).fill(NEWCOMER_NAME)
        page.get_by_label(w["preferences_organisation"], exact=True).fill(NEWCOMER_ORGANISATION)
        page.get_by_label(w["field_organisation_type"], exact=True).select_option(label=w["organisation_types"]["ngo"])
        page.get_by_label(w[f"language_{chosen}"], exact=True).check()
        for slug in NEWCOMER_TOPICS:
            page.get_by_label(catalogue[slug].names[language], exact=True).check()
        page_consent_version = page.locator("#consent").get_attribute("value")
        page.get_by_role("checkbox", name=consent, exact=True).check()
        with page.expect_navigation() as sent:
            page.get_by_role("button", name=w["subscribe_button"], exact=True).click()
        assert sent.value.status == 200
        assert heading(page) == w["subscribe_sent_title"] and status_text(page) == w["subscribe_sent_text"]
        look(visit, "subscribe-sent", language, width)
        pending = site.profile(address)
        assert pending is not None and (pending["status"], pending["topics"]) == ("pending", []), pending
        assert (pending["language"], pending["name"], pending["organisation"], pending["organisation_type"]) == (
            chosen, NEWCOMER_NAME, NEWCOMER_ORGANISATION, "ngo")

        # The engine sends the confirmation (the form started its campaign); take it out of the sink.
        engine = site.engine
        engine.wait_for(f"the confirmation email to {address}", lambda: site.inbox(address, "confirmation"), 60)
        [message] = site.inbox(address, "confirmation")
        campaign, _, edition, _ = feedback(message)
        assert edition == chosen
        engine.wait_state(int(campaign.removeprefix("campaign-")), "sent", seconds=30)  # the next one may start
        subject_language = "ro" if chosen == "both" else chosen
        assert words[subject_language]["confirm_subject"].format(org=org) in message["Subject"]
        assert words[subject_language]["greeting"].format(name=NEWCOMER_NAME) in message.get_body(
            ("plain",)).get_content()
        link = html_link(message, "/c/", "confirm")
        assert link.startswith(f"{site.url}/c/") and link in message.get_body(("plain",)).get_content()

        response = page.goto(link)
        assert response.status == 200
        assert heading(page) == w["confirm_page_title"]
        assert normalise_space(page.locator("main p").first.inner_text()) == w["confirm_page_intro"].format(
            org=org, email=address)
        look(visit, "confirm", language, width)
        assert [(stop["tag"], stop["text"]) for stop in tab_stops(page)][1] == ("button", w["confirm_page_button"])
        assert site.profile(address)["status"] == "pending", "opening the link confirms nothing"
        with page.expect_navigation() as confirmed:
            page.get_by_role("button", name=w["confirm_page_button"], exact=True).click()
        assert confirmed.value.status == 200
        assert heading(page) == w["confirmed_title"] and status_text(page) == w["confirmed_text"]
        look(visit, "confirmed", language, width)

    person = site.profile(address)
    assert person["status"] == "confirmed" and person["confirmed_at"] is not None
    assert person["topics"] == sorted(NEWCOMER_TOPICS) and person["language"] == chosen
    [record] = person["consents"]  # the form's wording, given when the click confirmed it
    assert (record["channel"], record["purpose"], record["source"]) == ("form", consent, f"subscribe page ({language})")
    assert record["text_version"] == page_consent_version


# --- The embeddable form in another site's <iframe>; the page itself refuses to be framed ---------------

PARTNER_PAGE = "https://partner.example.org/news.html"


def partner_page(src: str) -> str:
    """Another organisation's page with the form in an <iframe>, as the embedding instructions would have it."""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>A partner's news page</title>
<style>body {{ margin: 0; padding: 8px; font: 16px sans-serif; }}
iframe {{ display: block; width: 100%; height: 1700px; border: 1px solid #888; box-sizing: border-box; }}</style>
</head><body><h1>Partner news</h1><p>Subscribe to the programme's newsletter:</p>
<iframe src="{src}" title="Subscribe"></iframe></body></html>"""


def framed(page, url: str):
    """The frame of the page whose document is `url`."""
    return next((frame for frame in page.frames if frame.url == url), None)


@pytest.mark.parametrize(("language", "width"), [("en", 375), ("ro", 1024)])
def test_the_embeddable_form_shows_in_another_sites_iframe(browser, site, words, language, width):
    w = words[language]
    src = f"{site.url}/subscribe/embed?lang={language}"
    with site_page(browser, site.url, width, foreign={PARTNER_PAGE: partner_page(src)}) as visit:
        page = visit.page
        with page.expect_response(src) as answer:
            page.goto(PARTNER_PAGE)
        response = answer.value
        assert response.status == 200 and "x-frame-options" not in response.headers
        assert "frame-ancestors *" in response.headers["content-security-policy"]
        page.wait_for_load_state("load")
        frame = framed(page, src)
        assert frame is not None, [frame.url for frame in page.frames]
        title = frame.locator("h1")
        assert title.is_visible() and normalise_space(title.inner_text()) == w["subscribe_title"].format(
            org=site.settings.org_name)
        assert page.frame_locator("iframe").get_by_role("button", name=w["subscribe_button"]).is_visible()
        assert frame.locator("header, footer").count() == 0, "the embedded form has no header or footer"
        assert frame.evaluate("document.documentElement.lang") == language
        inner = frame.evaluate("document.documentElement.clientWidth")
        assert frame.evaluate("document.documentElement.scrollWidth") <= inner + OVERFLOW_TOLERANCE_PX
        assert frame.evaluate(_UNLABELLED_JS) == []
        low = [text for text in frame.evaluate(_CONTRAST_JS) if text["ratio"] < MIN_CONTRAST]
        assert not low, f"text below {MIN_CONTRAST}:1 contrast: {low}"
        assert visit.csp_violations() == [], visit.csp_violations()
        assert visit.served == [PARTNER_PAGE] and visit.aborted == []
        # Chromium paints a frame only where the viewport was: make it as tall as the page for the screenshot.
        page.set_viewport_size({"width": width, "height": page.evaluate("document.documentElement.scrollHeight")})
        shot(visit, "subscribe-embed", language, width)


def test_the_subscribe_page_itself_refuses_to_be_framed(browser, site):
    src = f"{site.url}/subscribe?lang=en"
    with site_page(browser, site.url, 1024, foreign={PARTNER_PAGE: partner_page(src)}) as visit:
        page = visit.page
        with page.expect_response(src) as answer:
            page.goto(PARTNER_PAGE)
        assert answer.value.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.value.headers["content-security-policy"]
        page.wait_for_load_state("load")
        assert framed(page, src) is None, "Chromium showed the framed page"
        assert all(frame.locator("form").count() == 0 for frame in page.frames), "no form is shown in the frame"
        assert any("frame-ancestors 'none'" in line for line in visit.console), visit.console


def test_the_embedded_form_answers_inside_the_iframe(browser, site, words):
    w = words["en"]
    src = f"{site.url}/subscribe/embed?lang=en"
    address = "embedded.newcomer@example.net"
    with site_page(browser, site.url, 1024, foreign={PARTNER_PAGE: partner_page(src)}) as visit:
        page = visit.page
        page.goto(PARTNER_PAGE)
        page.wait_for_load_state("load")
        iframe = page.locator("iframe").element_handle()
        form = page.frame_locator("iframe")
        form.get_by_role("textbox", name=w["field_email"], exact=True).fill(address)
        form.get_by_role("checkbox", name=w["subscribe_consent"].format(org=site.settings.org_name), exact=True).check()
        with page.expect_response(lambda response: response.request.method == "POST") as answer:
            form.get_by_role("button", name=w["subscribe_button"], exact=True).click()
        assert answer.value.status == 200
        page.wait_for_load_state("load")
        # The request itself went through: the person waits for their confirmation, which the engine sends.
        assert site.profile(address)["status"] == "pending"
        site.engine.wait_for("the embedded form's confirmation", lambda: site.inbox(address, "confirmation"), 60)
        page.set_viewport_size({"width": 1024, "height": page.evaluate("document.documentElement.scrollHeight")})
        shot(visit, "subscribe-embed-sent", "en", 1024)
        inside = iframe.content_frame()
        assert inside.url == f"{site.url}/subscribe/embed?lang=en", f"the frame shows {inside.url}"
        assert normalise_space(inside.locator("h1").inner_text()) == w["subscribe_sent_title"]
        assert inside.locator("header, footer").count() == 0, "the answer in the frame has no header or footer"
