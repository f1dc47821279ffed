"""Rendering every shipped item in every edition gives email that Python's parser reads back correctly."""

from __future__ import annotations

import html
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import mrml
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES, parse_eml, shipped_items
from worker.authoring.content import load_item
from worker.delivery.mime import build_eml
from worker.rendering.i18n import when
from worker.rendering.render import (
    EDITIONS,
    Recipient,
    compile_mjml,
    messages_of,
    sample_recipient,
)

CASES = [(item, edition, message) for item in shipped_items()
         for message in messages_of(item) for edition in EDITIONS]
HREF = re.compile(r'href="([^"]*)"')
CEDILLA = re.compile("[şţŞŢ]")


def test_there_is_enough_sample_content():
    kinds = [item.kind for item in shipped_items()]
    assert kinds.count("newsletter") >= 2 and kinds.count("event") >= 3


@pytest.mark.parametrize(("item", "edition", "message"), CASES,
                         ids=[f"{i.slug}-{m}-{e}" for i, e, m in CASES])
def test_rendered_email_reads_back(item, edition, message, renderer, settings):
    recipient = sample_recipient(settings)
    compiled = renderer.compile(item, edition, message)
    rendered = compiled.personalise(recipient)
    eml = build_eml(compiled, recipient, settings, feedback_id=f"test:{message}:{edition}")
    parsed = parse_eml(eml)

    # Structure: multipart/alternative, text first, both quoted-printable UTF-8.
    assert parsed.get_content_type() == "multipart/alternative"
    text_part, html_part = parsed.get_payload()
    assert text_part.get_content_type() == "text/plain" and html_part.get_content_type() == "text/html"
    for part in (text_part, html_part):
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"
    assert text_part.get_content().replace("\r\n", "\n") == rendered.text
    assert html_part.get_content().replace("\r\n", "\n") == rendered.html

    # Headers: non-ASCII text only as RFC 2047 encoded words, and the list headers.
    head = eml.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert parsed["Subject"] == compiled.subject
    assert str(parsed["From"]) == f"{settings.org_name} <{settings.org_email}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Unsubscribe"].startswith(f"<{recipient.links['unsubscribe']}>, <mailto:")
    assert parsed["Auto-Submitted"] == "auto-generated"

    # Language: the <html> and every language block are marked; each block's own text is there.
    languages = ("ro", "en") if edition == "both" else (edition,)
    assert re.search(rf'<html lang="{languages[0]}"', rendered.html)
    for language in languages:
        text = item.text(language)
        assert f'lang="{text.language}"' in rendered.html
        title = getattr(text.front, "title", None) or next(iter(text.sections.values())).title
        assert html.escape(title, quote=False) in rendered.html
        assert title in rendered.text
    if edition != "both":
        other = item.text("en" if edition == "ro" else "ro")
        assert other.front.subject not in rendered.text

    # Email-safe: alt text everywhere, absolute https links (Herald's own links use its base URL), size.
    for img in re.findall(r"<img\b[^>]*>", rendered.html):
        assert re.search(r'alt="[^"]+"', img), img
    for href in HREF.findall(rendered.html):
        assert href.startswith(("https://", "mailto:", settings.base_url + "/")), href
    assert len(rendered.html.encode()) < 102 * 1024
    assert not CEDILLA.search(rendered.html + rendered.text + compiled.subject)
    # Every per-recipient slot was filled.
    assert "⟦" not in rendered.html and "⟦" not in rendered.text


def test_mjml_compiles_once_per_item_and_edition_whatever_the_recipients(renderer, settings, monkeypatch):
    calls = []
    real = mrml.to_html
    monkeypatch.setattr(mrml, "to_html", lambda source, *a: calls.append(source) or real(source, *a))
    item = load_item(FIXTURES / "newsletter")
    recipients = [Recipient(email=f"person{n}@example.org", name=f"Person {n}", timezone="Europe/Vilnius",
                            links={"unsubscribe": f"{settings.base_url}/u/{n}"}) for n in range(300)]

    for edition in EDITIONS:
        compiled = renderer.compile(item, edition, "newsletter")
        messages = [compiled.personalise(recipient) for recipient in recipients]
        assert messages[7].html.count("Person 7") >= 1 and "Person 8" not in messages[7].html

    assert len(calls) == len(EDITIONS)


@hypothesis_settings(max_examples=60, deadline=None)
@given(name=st.text(min_size=1, max_size=40).filter(lambda s: s.strip() and "⟦" not in s))
def test_recipient_fields_are_escaped_in_html_and_verbatim_in_text(renderer, name):
    compiled = renderer.compile(load_item(FIXTURES / "event"), "en", "invitation")
    message = compiled.personalise(Recipient(email="a@example.org", name=name))
    assert f"Dear {html.escape(name, quote=True)}," in message.html
    assert f"Dear {name}," in message.text


def test_local_time_appears_only_when_the_recipient_zone_differs(renderer):
    compiled = renderer.compile(load_item(FIXTURES / "event"), "both", "invitation")
    lisbon = compiled.personalise(Recipient(email="a@example.org", timezone="Europe/Lisbon"))
    bucharest = compiled.personalise(Recipient(email="b@example.org", timezone="Europe/Bucharest"))

    assert "24 februarie 2027, 09:30 – 25 februarie 2027, 16:00 (ora Bucureștiului)" in lisbon.html
    assert "24 February 2027, 09:30 – 25 February 2027, 16:00 (Bucharest time)" in lisbon.html
    assert "La dumneavoastră: 24 februarie 2027, 07:30 – 25 februarie 2027, 14:00 (ora Lisabonei)" in lisbon.html
    assert "Your time: 24 February 2027, 07:30 – 25 February 2027, 14:00 (Lisbon time)" in lisbon.text
    assert "Your time" not in bucharest.text and "La dumneavoastră" not in bucharest.html


# The zones subscribers are likely in, named by their city: a Romanian genitive where one declines simply
# (-a becomes -ei; a consonant or -i takes -ului; -ău takes -lui), "ora din" where it would read badly.
ZONE_NAMES = [
    ("Europe/Lisbon", "ora Lisabonei", "Lisbon time"),
    ("Europe/Bucharest", "ora Bucureștiului", "Bucharest time"),
    ("Europe/Chisinau", "ora Chișinăului", "Chișinău time"),
    ("Europe/London", "ora Londrei", "London time"),
    ("Europe/Sofia", "ora Sofiei", "Sofia time"),
    ("Europe/Berlin", "ora Berlinului", "Berlin time"),
    ("Europe/Paris", "ora Parisului", "Paris time"),
    ("Europe/Brussels", "ora din Bruxelles", "Brussels time"),
    ("Europe/Prague", "ora din Praga", "Prague time"),
    ("Asia/Tokyo", "ora din Tokyo", "Tokyo time"),
    ("America/New_York", "ora din New York", "New York time"),
    ("UTC", "UTC", "UTC"),
    ("Etc/GMT-3", "UTC+03:00", "UTC+03:00"),
]


@pytest.mark.parametrize(("zone", "romanian", "english"), ZONE_NAMES, ids=[zone for zone, *_ in ZONE_NAMES])
def test_zone_names_read_as_people_say_them(zone, romanian, english):
    start = datetime(2027, 2, 24, 9, 30, tzinfo=ZoneInfo(zone))
    for language, name in (("ro", romanian), ("en", english)):
        line = when(start, language, start + timedelta(hours=2))
        assert line.endswith(f", 09:30–11:30 ({name})"), line


def test_text_alternative_is_built_from_the_content(renderer):
    compiled = renderer.compile(load_item(FIXTURES / "newsletter"), "en", "newsletter")
    text = compiled.personalise(Recipient(email="a@example.org", name="Ana")).text

    assert "CO4CITIES: co-creating public services\n======================================" in text
    assert "- workshops with citizens\n- pilot projects in every city" in text
    assert "with details on the website [1]." in text
    assert re.search(r"^Links\n-----\n\[1\] https://urbact\.eu/news$", text, re.MULTILINE)
    assert "Partner cities: Cluj-Napoca (RO), Bologna (IT)" in text
    assert "Deadline: 31 March 2027, 23:59 (Bucharest time)" in text
    assert "<" not in text


def test_a_missing_language_stands_in_when_meta_says_so(renderer, tmp_path: Path):
    item_dir = tmp_path / "newsletter"
    shutil.copytree(FIXTURES / "newsletter", item_dir)
    (item_dir / "en.md").unlink()
    meta = item_dir / "meta.yaml"
    meta.write_text(meta.read_text() + "fallback_language: ro\n")

    rendered = renderer.compile(load_item(item_dir), "en", "newsletter").personalise(Recipient(email="a@example.org"))

    assert '<html lang="ro"' in rendered.html
    assert "CO4CITIES: co-crearea serviciilor publice" in rendered.text


def test_non_ascii_subject_and_names_are_rfc2047_encoded(renderer, settings):
    compiled = renderer.compile(load_item(FIXTURES / "event"), "ro", "invitation")
    recipient = Recipient(email="stefan@example.ro", name="Ștefan Țurcanu")
    eml = build_eml(compiled, recipient, settings, feedback_id="test:invitation:ro")
    head = eml.split(b"\r\n\r\n", 1)[0].decode("ascii")

    assert "=?utf-8?" in head
    parsed = parse_eml(eml)
    assert parsed["Subject"] == "Invitație: reuniunea partenerilor DI4C la Botoșani"
    assert parsed["To"].addresses[0].display_name == "Ștefan Țurcanu"


def test_cedillas_in_content_are_repaired_on_load(tmp_path: Path, renderer):
    item_dir = tmp_path / "event"
    shutil.copytree(FIXTURES / "event", item_dir)
    ro = item_dir / "ro.md"
    ro.write_text(ro.read_text().replace("Înregistrarea participanților", "Înregistrarea participanţilor"))

    item = load_item(item_dir)
    rendered = renderer.compile(item, "ro", "invitation").personalise(Recipient(email="a@example.org"))

    assert [(n.line, n.fixable) for n in item.notes] == [(9, True)]
    assert "participanților" in rendered.text and not CEDILLA.search(rendered.html)


def test_newlines_inside_attribute_values_are_collapsed_before_mrml():
    html = compile_mjml('<mjml><mj-body><mj-section><mj-column><mj-button href="https://urbact.eu/\n    calls">Go'
                        '</mj-button></mj-column></mj-section></mj-body></mjml>')
    assert 'href="https://urbact.eu/ calls"' in html and "\n    calls" not in html
