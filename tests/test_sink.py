"""The local SMTP sink keeps exactly the bytes it is sent, one file per recipient, and an index to browse them."""

from __future__ import annotations

import re
import smtplib
import threading
from html.parser import HTMLParser
from pathlib import Path

from tests.conftest import parse_eml
from worker.delivery.mime import header
from worker.delivery.sink import start_sink

SUBJECT = "Invitație: întâlnire în Botoșani"


def eml(subject: str, body: str) -> bytes:
    """A message as Herald writes them: CRLF lines; a line starting with a dot tests SMTP's dot-stuffing."""
    return (header("Subject", subject) + "\r\nFrom: urbact@herald.localhost\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode() + b"\r\n.dot line\r\n"


class _Index(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.charset = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self.links.append(values["href"] or "")
        if tag == "meta":
            self.charset = values.get("charset") or ""


def read_index(outbox: Path) -> tuple[str, _Index]:
    text = (outbox / "index.html").read_text(encoding="utf-8")
    parser = _Index()
    parser.feed(text)
    parser.close()
    return text, parser


def test_every_recipient_gets_a_file_with_the_bytes_sent_and_a_line_in_the_index(tmp_path: Path):
    sent = [(["ana@example.org"], eml("Buletin URBACT", "Bună ziua")),
            (["ion@example.org", "maria@example.ro"], eml(SUBJECT, "Vă așteptăm.")),
            (["ana@example.org"], eml("Third", "x" * 70))]
    before = set(threading.enumerate())
    with start_sink(tmp_path / "outbox") as sink, smtplib.SMTP("127.0.0.1", sink.port) as client:
        assert sink.url == f"smtp://127.0.0.1:{sink.port}?security=none"
        for recipients, message in sent:
            client.sendmail("urbact@herald.localhost", recipients, message)

    assert set(threading.enumerate()) <= before
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert [path.name[:9] for path in files] == ["00000001-", "00000002-", "00000003-", "00000004-"]
    assert all(re.fullmatch(r"\d{8}-[0-9a-f]{8}\.eml", path.name) for path in files)
    expected = [message for recipients, message in sent for _ in recipients]
    # aiosmtpd undoes the dot-stuffing and keeps the CRLF line ends: the files are byte for byte what was sent.
    assert [path.read_bytes() for path in files] == expected
    assert parse_eml(files[1].read_bytes())["Subject"] == SUBJECT
    assert files[1].name != files[2].name and files[1].read_bytes() == files[2].read_bytes()

    text, index = read_index(tmp_path / "outbox")
    assert index.charset == "utf-8"
    assert index.links == [path.name for path in files]
    assert text.count(SUBJECT) == 2
    assert "maria@example.ro" in text


def test_a_restarted_sink_continues_the_numbering_and_the_index(tmp_path: Path):
    outbox = tmp_path / "outbox"
    for subject in ("Prima", "A doua"):
        with start_sink(outbox) as sink, smtplib.SMTP("127.0.0.1", sink.port) as client:
            client.sendmail("urbact@herald.localhost", ["ana@example.org"], eml(subject, "text"))

    assert sorted(path.name[:8] for path in outbox.glob("*.eml")) == ["00000001", "00000002"]
    text, index = read_index(outbox)
    assert text.count("<!doctype html>") == 1
    assert len(index.links) == 2 and "A doua" in text


def test_a_message_of_over_10_mb_is_accepted(tmp_path: Path):
    message = eml("Mare", ("y" * 76 + "\r\n") * 140_000)
    assert len(message) > 10 * 1024 * 1024
    with start_sink(tmp_path / "outbox") as sink, smtplib.SMTP("127.0.0.1", sink.port) as client:
        client.sendmail("urbact@herald.localhost", ["ana@example.org"], message)
    [stored] = (tmp_path / "outbox").glob("*.eml")
    assert stored.read_bytes() == message


def test_the_sink_takes_an_address_with_a_unicode_local_part_over_smtputf8(tmp_path: Path):
    """RFC 6531: the local outbox offers SMTPUTF8 (not left to aiosmtpd's default), so `ștefan@…` arrives."""
    message = eml("Bun venit", "text")
    with start_sink(tmp_path / "outbox") as sink, smtplib.SMTP("127.0.0.1", sink.port) as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        client.sendmail("urbact@herald.localhost", ["ștefan@exemplu.ro"], message, mail_options=["SMTPUTF8"])
    [stored] = (tmp_path / "outbox").glob("*.eml")
    assert stored.read_bytes() == message
    assert "ștefan@exemplu.ro" in read_index(tmp_path / "outbox")[0]
