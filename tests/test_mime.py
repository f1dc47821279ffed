"""The hand-built .eml reads back exactly through Python's email parser, whatever the text."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings as hypothesis_settings, strategies as st

from tests.conftest import parse_eml
from worker.mime import LINE, build_eml, header, mailbox, quoted_printable
from worker.render import Message, Recipient

# Header text as people write it: any printable character, single spaces between words.
words = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=30)
header_text = st.lists(words, min_size=1, max_size=12).map(" ".join)


@hypothesis_settings(max_examples=300, deadline=None)
@given(subject=header_text)
def test_any_subject_reads_back_exactly(subject):
    wire = header("Subject", subject)
    assert wire.isascii()
    assert all(len(line) <= 998 for line in wire.split("\r\n"))
    parsed = parse_eml((wire + "\r\n\r\n").encode())
    assert parsed["Subject"] == subject


@hypothesis_settings(max_examples=200, deadline=None)
@given(name=header_text.filter(lambda name: name.isascii() or len(name.encode()) <= 20))
def test_any_display_name_reads_back_exactly(name):
    # Up to 20 bytes of UTF-8 fit one encoded word. Longer names take several, which RFC 2047 readers
    # join, but Python's address parser (unlike its Subject parser) puts a space between them.
    parsed = parse_eml(f"To: {mailbox(name, 'ana@example.org')}\r\n\r\n".encode())
    address = parsed["To"].addresses[0]
    assert (address.display_name, address.addr_spec) == (name, "ana@example.org")


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


def test_eml_layout(settings):
    message = Message(subject="Invitație", html="<p>Bună</p>\n", text="Bună\n")
    recipient = Recipient(email="ana@example.org", name="Ana", links={"unsubscribe": "https://h.example/u/1"})
    eml = build_eml(message, recipient, settings, sent_at=datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC))
    parsed = parse_eml(eml)

    assert parsed["Date"] == "Sat, 02 Jan 2027 03:04:05 +0000"
    assert parsed["Message-ID"].endswith(f"@{settings.org_email.rpartition('@')[2]}>")
    assert parsed["List-Id"] == f"<{settings.list_id}>"
    assert parsed["List-Unsubscribe"] == f"<https://h.example/u/1>, <mailto:{settings.org_email}?subject=unsubscribe>"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed.get_body(("plain",)).get_content() == "Bună\r\n"
    assert not parsed.defects and not any(p.defects for p in parsed.iter_parts())
