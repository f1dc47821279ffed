"""Header lines as RFC 5322 and RFC 2047 want them, whatever the subject, the name or the links:
every line within 78 characters, every encoded word within 75, and every value read back as written."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from headers import display_name, header_block, long_encoded_words, overlong
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from smtp_faults import ScriptedSink

from foundation.smtp_url import parse_smtp_url
from tests.conftest import FIXTURES, parse_eml, shipped_items
from worker.authoring.content import load_item
from worker.delivery.mime import Skeleton, address_header, header
from worker.delivery.smtp import SmtpSender
from worker.rendering.render import (
    EDITIONS,
    CompiledEdition,
    Recipient,
    Renderer,
    messages_of,
)

SENT_AT = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
UNSUBSCRIBE = "https://herald.example.org/u/AgAAAeJAAAAAKmsQE46rq6urq6urqw.CkUnOwvHGDGZ9bEWn2LHdQ"  # 82 characters


@pytest.fixture(scope="module")
def edition(renderer: Renderer) -> CompiledEdition:
    return renderer.compile(load_item(FIXTURES / "newsletter"), "both", "newsletter")


def build(renderer: Renderer, compiled: CompiledEdition, recipient: Recipient, prefix: str = "") -> bytes:
    skeleton = Skeleton.prepare(compiled, renderer.settings, feedback_id="campaign-1:newsletter:ro",
                                subject_prefix=prefix)
    return skeleton.build(recipient, message_id="<c1.d1@herald.example.org>", sent_at=SENT_AT)


def assert_well_folded(eml: bytes) -> None:
    lines = header_block(eml)
    assert not overlong(lines), overlong(lines)
    assert not long_encoded_words(lines), long_encoded_words(lines)


def test_every_shipped_message_has_header_lines_within_78(renderer):
    """The demo's subjects began with a line of 83 or 84 characters: the header's name was not counted."""
    recipient = Recipient(email="ana@example.org", name="Ana Popescu", links={"unsubscribe": UNSUBSCRIBE})
    subjects = 0
    for item in shipped_items():
        for message in messages_of(item):
            for name in EDITIONS:
                compiled = renderer.compile(item, name, message)
                for prefix in ("", "[TEST] "):
                    eml = build(renderer, compiled, recipient, prefix)
                    assert_well_folded(eml)
                    assert parse_eml(eml)["Subject"] == prefix + compiled.subject
                    subjects += 1
    assert subjects > 20


# Header text as people write it: any printable character, single spaces between words, and now and then
# a word longer than a line or something that looks like an encoded word.
word = st.one_of(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=30),
                 st.sampled_from(["=?utf-8?q?Admin=0D=0ABcc:x?=", "=?", "?=", "Ștefan", "\"J.\"", "a\\b"]),
                 st.text("abcdefghij-", min_size=70, max_size=200))
header_text = st.lists(word, min_size=1, max_size=14).map(" ".join)


@hypothesis_settings(max_examples=300, deadline=None)
@given(subject=header_text, name=header_text, prefix=st.sampled_from(["", "[TEST] "]),
       unsubscribe=st.from_regex(r"https://h\.example/u/[A-Za-z0-9_.-]{1,120}", fullmatch=True))
def test_every_header_line_fits_and_reads_back(renderer, edition, subject, name, prefix, unsubscribe):
    recipient = Recipient(email="ana@example.org", name=name, links={"unsubscribe": unsubscribe})
    eml = build(renderer, replace(edition, subject=subject), recipient, prefix)
    assert_well_folded(eml)
    parsed = parse_eml(eml)
    assert parsed["Subject"] == prefix + subject
    assert display_name(parsed) == name and parsed["To"].addresses[0].addr_spec == "ana@example.org"
    mailto = f"<mailto:{renderer.settings.org_email}?subject=unsubscribe>"
    assert parsed["List-Unsubscribe"].lstrip() == f"<{unsubscribe}>, {mailto}"  # see the next test


@pytest.mark.parametrize(("length", "first_line"), [
    (40, "List-Unsubscribe: <{url}>,"),  # fits after the name
    (60, "List-Unsubscribe:"),  # fits a line of its own: the fold comes right after the colon (legal FWS)
    (90, "List-Unsubscribe: <{url}>,"),  # longer than any line: a fold after the colon would gain nothing
])
def test_list_unsubscribe_is_folded_after_its_comma_and_after_the_colon_only_where_that_helps(
        renderer, edition, length, first_line):
    url = "https://h.example/u/" + "x" * (length - len("https://h.example/u/"))
    eml = build(renderer, edition, Recipient(email="ana@example.org", links={"unsubscribe": url}))
    lines = header_block(eml)
    start = next(index for index, line in enumerate(lines) if line.startswith("List-Unsubscribe:"))
    assert lines[start] == first_line.format(url=url)
    assert lines[start + 1].startswith(" <")
    assert not overlong(lines)
    # RFC 2369 2: leading whitespace is no part of the field; Python's reading keeps the fold as a space.
    assert parse_eml(eml)["List-Unsubscribe"].lstrip().startswith(f"<{url}>, <mailto:")


@pytest.mark.parametrize("name", [
    "Ana Popescu", "Ștefan Țepeș", "Popescu, Ion", "J. R. R. Tolkien", 'Ion "Nelu" Pop', "O'Brien \\ Co",
    "Primăria Municipiului Cluj-Napoca, Direcția Dezvoltare Urbană și Relații Internaționale",
    "Asociația Municipiilor din România — Filiala Botoșani — Departamentul de Proiecte Europene",
    "Ζωή Παπαδοπούλου", "李小龙", "🙂 Ana", "=?utf-8?q?Admin=0D=0ABcc:x?=", "x =?utf-8?b?QWRtaW4=?= y",
])
def test_names_read_back_exactly_through_the_email_package_alone(name):
    """Names of people and organisations never need two encoded words in a row, so even Python 3.11 reads them."""
    wire = address_header("To", name, "ana@example.org")
    assert parse_eml((wire + "\r\n\r\n").encode())["To"].addresses[0].display_name == name
    assert not overlong(wire.split("\r\n"))


def test_a_name_that_looks_like_an_encoded_word_reads_back_as_the_literal_text():
    """Passed raw inside quotes, it was decoded by readers into a CR LF and a Bcc header."""
    name = "=?utf-8?q?Admin=0D=0ABcc:victim@example.org?="
    wire = address_header("To", name, "ana@example.org")
    parsed = parse_eml((wire + "\r\n\r\n").encode())
    assert parsed["To"].addresses[0].display_name == name
    assert name not in wire and parsed.keys() == ["To"]


@pytest.mark.parametrize(("name", "read"), [
    ("Ana\r\nBcc: victim@example.org", "Ana Bcc: victim@example.org"),
    ("  Ana \t Pop\x00 ", "Ana Pop"),
])
def test_control_characters_never_reach_a_reader(name, read):
    wire = address_header("To", name, "ana@example.org")
    assert "\n" not in wire.replace("\r\n ", "")
    assert display_name(parse_eml((wire + "\r\n\r\n").encode())) == read


def test_an_address_that_cannot_fit_after_the_colon_starts_on_the_next_line():
    address = "a" * 50 + "@" + "b" * 10 + ".example.org"
    assert address_header("To", "", address) == f"To:\r\n <{address}>"
    unbreakable = "a" * 80 + "@example.org"  # longer than any line: folding after the colon would gain nothing
    assert address_header("To", "Ana", unbreakable) == f"To: Ana\r\n <{unbreakable}>"
    assert address_header("To", "", unbreakable) == f"To: <{unbreakable}>"
    wire = header("Subject", "x" * 300)
    assert not overlong(wire.split("\r\n")) and parse_eml((wire + "\r\n\r\n").encode())["Subject"] == "x" * 300


def test_a_ten_thousand_character_name_arrives_intact_through_a_real_send(renderer, edition, tmp_path: Path):
    """From an import: a 10,240-character To line, `500 Line too long`, and the person bounced for good."""
    name = " ".join(["Asociația Orașelor din România", "Filiala Iași", "Departamentul de Proiecte"] * 200)[:10240]
    name = name.strip()
    recipient = Recipient(email="ana@example.org", name=name, links={"unsubscribe": UNSUBSCRIBE})
    subject = "Invitație la întâlnirea rețelei: orașe verzi, creative și conectate în regiunea Dunării"
    eml = build(renderer, replace(edition, subject=subject), recipient)
    with ScriptedSink(tmp_path / "outbox") as sink, SmtpSender(parse_smtp_url(sink.url), timeout=10) as sender:
        outcome = sender.send(renderer.settings.org_email, recipient.email, eml)
    assert outcome.status == "sent", outcome
    [stored] = (tmp_path / "outbox").glob("*.eml")
    arrived = stored.read_bytes()
    assert arrived == eml
    assert_well_folded(arrived)
    parsed = parse_eml(arrived)
    assert parsed["To"].addresses[0].display_name == display_name(parsed) == name
    assert parsed["Subject"] == subject
