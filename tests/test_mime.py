"""The hand-built .eml reads back exactly through Python's email parser, whatever the text."""

from __future__ import annotations

import binascii
import re
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from headers import addr_spec, display_name, header_block, long_encoded_words, overlong
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.conftest import FIXTURES, parse_eml
from worker.authoring.content import load_item
from worker.delivery.mime import (
    LINE,
    Skeleton,
    address_header,
    build_eml,
    header,
    message_id,
    quoted_printable,
)
from worker.rendering.render import CompiledEdition, Recipient, Renderer, SlotTemplate

# Header text as people write it: any printable character, single spaces between words.
words = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=30)
header_text = st.lists(words, min_size=1, max_size=12).map(" ".join)


@hypothesis_settings(max_examples=300, deadline=None)
@given(subject=header_text)
def test_any_subject_reads_back_exactly(subject):
    wire = header("Subject", subject)
    assert wire.isascii()
    assert not overlong(wire.split("\r\n")) and not long_encoded_words(wire.split("\r\n"))
    parsed = parse_eml((wire + "\r\n\r\n").encode())
    assert parsed["Subject"] == subject


@hypothesis_settings(max_examples=200, deadline=None)
@given(name=header_text)
def test_any_display_name_reads_back_exactly(name):
    # Read as RFC 2047 6.2 says (tests/headers.py): Python 3.11 alone puts a space between two encoded words.
    wire = address_header("To", name, "ana@example.org")
    parsed = parse_eml(f"{wire}\r\n\r\n".encode())
    assert (display_name(parsed), parsed["To"].addresses[0].addr_spec) == (name, "ana@example.org")
    assert not overlong(wire.split("\r\n")) and not long_encoded_words(wire.split("\r\n"))


@hypothesis_settings(max_examples=200, deadline=None)
@given(body=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=400))
def test_quoted_printable_bodies_read_back_and_keep_lines_short(body):
    encoded = quoted_printable(body)
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    part = parse_eml(b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + encoded)
    assert part.get_content().replace("\r\n", "\n") == body


def test_ascii_subjects_fold_at_spaces_and_stay_readable():
    subject = "URBACT Romania | CapaCITIES and CINEMA: climate-neutral, creative cities in the Danube region"
    wire = header("Subject", subject)
    assert "=?" not in wire and all(len(line) <= LINE for line in wire.split("\r\n"))
    assert wire.startswith("Subject: URBACT Romania")


@pytest.fixture(scope="module")
def edition(renderer: Renderer) -> CompiledEdition:
    """A real bilingual newsletter, whose subject and bodies the tests swap for their own."""
    return renderer.compile(load_item(FIXTURES / "newsletter"), "both", "newsletter")


def test_eml_layout(settings, edition):
    compiled = replace(edition, subject="Invitație", html=SlotTemplate.parse("<p>Bună</p>\n"),
                       text=SlotTemplate.parse("Bună\n"))
    recipient = Recipient(email="ana@example.org", name="Ana", links={"unsubscribe": "https://h.example/u/1"})
    eml = build_eml(compiled, recipient, settings, feedback_id="test:layout",
                    sent_at=datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC))
    parsed = parse_eml(eml)

    assert parsed["Date"] == "Sat, 02 Jan 2027 03:04:05 +0000"
    assert parsed["Message-ID"].endswith(f"@{settings.org_email.rpartition('@')[2]}>")
    assert parsed["List-Id"] == f"<{settings.list_id}>"
    assert parsed["List-Unsubscribe"] == f"<https://h.example/u/1>, <mailto:{settings.org_email}?subject=unsubscribe>"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed.get_body(("plain",)).get_content() == "Bună\r\n"
    assert not parsed.defects and not any(p.defects for p in parsed.iter_parts())


# --- The campaign skeleton: fixed parts encoded once, each recipient's slots per message -------

SLOTS = ("email", "unsubscribe_url", "view_url", "greeting_ro", "greeting_en", "local_time_en")
# Text as templates hold it, with what quoted-printable must take care of made likely: spaces
# and tabs before line ends, "=", lone dots, and long lines (MRML writes the HTML as one line).
characters = st.one_of(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r⟦"),
                       st.sampled_from(" \t\n.=é"))
fixed_text = st.one_of(st.text(characters, max_size=40),
                       st.builds(lambda unit, times: unit * times, st.text(characters, min_size=1, max_size=6),
                                 st.integers(1, 400)))
template = st.builds(lambda pieces, tail: SlotTemplate.parse("".join(f"{text}⟦{name}⟧" for text, name in pieces) + tail),
                     st.lists(st.tuples(fixed_text, st.sampled_from(SLOTS)), max_size=8), fixed_text)
recipients = st.builds(
    Recipient,
    email=st.emails(),
    # Any character but a line break, which profile.clean_text never leaves and Python's address parser refuses.
    name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=40),
    links=st.fixed_dictionaries({}, optional={
        "unsubscribe": st.from_regex(r"https?://h\.example/u/[A-Za-z0-9_-]{1,90}", fullmatch=True),
        "view": st.text(characters, max_size=30).map(lambda tail: f'https://h.example/v?a=1&b="{tail}"')}),
)
moments = st.datetimes(min_value=datetime(1980, 1, 1), max_value=datetime(2200, 1, 1),
                       timezones=st.sampled_from([UTC, ZoneInfo("Europe/Bucharest"), ZoneInfo("America/New_York")]))


@hypothesis_settings(max_examples=250, deadline=None)
@given(text=template, html=template, recipient=recipients, sent_at=moments,
       subject=header_text, prefix=st.sampled_from(["", "[TEST] "]))
def test_skeleton_messages_read_back_exactly(renderer, edition, text, html, recipient, sent_at, subject, prefix):
    settings = renderer.settings
    compiled = replace(edition, subject=subject, text=text, html=html)
    skeleton = Skeleton.prepare(compiled, settings, feedback_id="campaign-12:newsletter:ro", subject_prefix=prefix)
    given_id = message_id(skeleton.domain)
    eml = skeleton.build(recipient, message_id=given_id, sent_at=sent_at)
    parsed = parse_eml(eml)
    expected = compiled.personalise(recipient)

    # Body: multipart/alternative, text first, quoted-printable, decoding to stage 2's output exactly.
    assert parsed.get_content_type() == "multipart/alternative"
    text_part, html_part = parsed.get_payload()
    assert (text_part.get_content_type(), html_part.get_content_type()) == ("text/plain", "text/html")
    for part in (text_part, html_part):
        assert part["Content-Transfer-Encoding"] == "quoted-printable" and part.get_content_charset() == "utf-8"
    assert text_part.get_content().replace("\r\n", "\n") == expected.text
    assert html_part.get_content().replace("\r\n", "\n") == expected.html
    assert not parsed.defects and not any(part.defects for part in parsed.iter_parts())

    # Lines: CRLF only, bodies within quoted-printable's 76, headers ASCII within 78 but for a URL longer than that.
    assert b"\r" not in eml.replace(b"\r\n", b"") and b"\n" not in eml.replace(b"\r\n", b"")
    head, body = eml.split(b"\r\n\r\n", 1)
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert head.isascii() and not overlong(header_block(eml)) and not long_encoded_words(header_block(eml))

    # Headers.
    assert parsed["Subject"] == prefix + subject
    assert parsed["Date"].datetime == sent_at.astimezone(UTC).replace(microsecond=0)
    assert parsed["Date"].endswith(" +0000")
    assert parsed["Message-ID"] == given_id
    assert parsed["To"].addresses[0].addr_spec == recipient.email
    assert parsed["From"].addresses[0].addr_spec == settings.org_email
    assert parsed["List-Id"] == f"<{settings.list_id}>"
    assert parsed["Feedback-ID"] == "campaign-12:newsletter:ro:herald"
    assert parsed["Auto-Submitted"] == "auto-generated" and parsed["MIME-Version"] == "1.0"
    if "unsubscribe" in recipient.links:
        # Leading whitespace is no part of it (RFC 2369 2); Python keeps a fold after the colon as a space.
        assert parsed["List-Unsubscribe"].lstrip() == (f"<{recipient.links['unsubscribe']}>, "
                                              f"<mailto:{settings.org_email}?subject=unsubscribe>")
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    else:
        assert "List-Unsubscribe" not in parsed and "List-Unsubscribe-Post" not in parsed


def test_long_lines_cut_at_their_slots_keep_every_line_within_76(renderer, edition):
    recipient = Recipient(email="ana@example.org", name="Ana")
    for width in range(990, 1070):  # the fixed text before each slot ends at every column in turn
        line = "x" * width + "⟦email⟧" + "y" * width + "⟦greeting_ro⟧.\n"
        compiled = replace(edition, text=SlotTemplate.parse(line), html=SlotTemplate.parse(line))
        eml = Skeleton.prepare(compiled, renderer.settings, feedback_id="c:n:ro").build(
            recipient, message_id="<1@example.org>", sent_at=datetime(2027, 1, 2, tzinfo=UTC))

        assert all(len(line) <= 76 for line in eml.split(b"\r\n\r\n", 1)[1].split(b"\r\n")), width
        text = parse_eml(eml).get_body(("plain",)).get_content()
        assert text.replace("\r\n", "\n") == compiled.personalise(recipient).text, width


def test_recipients_of_one_skeleton_share_every_fixed_piece(renderer, edition):
    text = ("Bună ziua,\n⟦greeting_ro⟧\n" + "Rândul fix = cu spații la capăt  \n.\n" * 10
            + "Dezabonare: ⟦unsubscribe_url⟧\nSfârșit.\n")
    html = ("<p>" + "Conținut fix. " * 400 + "⟦greeting_ro⟧" + " încă ceva" * 300
            + '<a href="⟦unsubscribe_url⟧">dezabonare</a></p>\n')
    compiled = replace(edition, text=SlotTemplate.parse(text), html=SlotTemplate.parse(html))
    skeleton = Skeleton.prepare(compiled, renderer.settings, feedback_id="campaign-1:newsletter:both")
    sent_at = datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)
    ana = Recipient(email="ana@example.org", name="Ana", links={"unsubscribe": "https://h.example/u/1"})
    ion = Recipient(email="ion@example.org", name="Ion Ionescu", links={"unsubscribe": "https://h.example/u/2"})

    a = skeleton._pieces(ana, "<1@example.org>", sent_at)
    b = skeleton._pieces(ion, "<2@example.org>", sent_at)

    # The same precomputed objects everywhere but in the recipient's headers and its four slot pieces.
    assert len(a) == len(b)
    own = [index for index, (x, y) in enumerate(zip(a, b)) if x is not y]
    assert len(own) == 1 + 4 and a[1].startswith(b"To: Ana")
    assert sum(len(a[index]) for index in own) < 0.05 * len(b"".join(a))

    # Seen as lines: what only Ana's message holds is her headers and lines holding her values.
    values = [dict(compiled.slot_values(ana))[name] for name in ("greeting_ro", "unsubscribe_url")]
    only_ana = set(b"".join(a).split(b"\r\n")) - set(b"".join(b).split(b"\r\n"))
    for line in only_ana:
        decoded = binascii.a2b_qp(line.rstrip(b"=")).decode()
        assert re.match(r"(To|Message-ID|List-Unsubscribe): ", decoded) or any(v in decoded for v in values), line
    assert len(only_ana) == 3 + 4


def test_an_idn_domain_is_written_as_its_a_label_and_a_unicode_local_part_as_utf8(renderer, edition):
    skeleton = Skeleton.prepare(edition, renderer.settings, feedback_id="c:n:both")
    sent_at = datetime(2027, 1, 2, tzinfo=UTC)

    idn = skeleton.build(Recipient(email="ion@bucurești.example.org", name="Ion"), message_id="<1@example.org>",
                         sent_at=sent_at)
    assert idn.split(b"\r\n\r\n", 1)[0].isascii()
    assert parse_eml(idn)["To"].addresses[0].addr_spec == "ion@xn--bucureti-m9c.example.org"

    utf8 = skeleton.build(Recipient(email="ștefan@bucurești.example.org", name="Ștefan"),
                          message_id="<1@example.org>", sent_at=sent_at)
    assert "To: =?utf-8?q?=C8=98tefan?= <ștefan@xn--bucureti-m9c.example.org>".encode() in utf8  # RFC 6532
    assert parse_eml(utf8)["To"].addresses[0].display_name == "Ștefan"
    assert addr_spec(parse_eml(utf8)) == "ștefan@xn--bucureti-m9c.example.org"
    assert utf8.replace(b"\xc8\x99tefan@", b"").isascii(), "the To address is the only 8-bit text"


def test_feedback_id_must_be_a_plain_ascii_token(renderer, edition):
    with pytest.raises(ValueError, match="Feedback-ID"):
        Skeleton.prepare(edition, renderer.settings, feedback_id="campanie 1:știri")


def test_message_ids_are_unique_and_on_the_sender_domain():
    ids = {message_id("herald.example") for _ in range(1000)}
    assert len(ids) == 1000 and all(re.fullmatch(r"<[0-9a-f]{32}@herald\.example>", i) for i in ids)
