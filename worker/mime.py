"""Builds a complete .eml by hand: multipart/alternative, text first, quoted-printable, RFC 2047 headers.

The email package folds some headers so that they do not read back as written (a subject comes back
with a leading or doubled space), and it costs milliseconds per message. Writing the bytes here keeps
every header exact and gives the campaign engine a builder it can precompute parts of.
"""

from __future__ import annotations

import binascii
import secrets
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid

from worker.render import Message, Recipient
from worker.settings import Settings

LINE = 78  # RFC 5322's recommended line length
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_ATOM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~ ")


def _q_word_chunks(value: str, room: int) -> list[str]:
    """Cut `value` into RFC 2047 Q-encoded words of at most `room` characters, never inside a character."""
    words, current = [], ""
    for char in value:
        encoded = "".join(chr(b) if b in _Q_SAFE else ("_" if b == 0x20 else f"={b:02X}") for b in char.encode())
        if current and len(current) + len(encoded) > room - len("=?utf-8?q??="):
            words.append(f"=?utf-8?q?{current}?=")
            current = ""
        current += encoded
    words.append(f"=?utf-8?q?{current}?=")
    return words


def _fold(name: str, pieces: list[str]) -> str:
    """Join `pieces` with spaces into a header, breaking the line before a piece that would pass LINE."""
    lines, line = [], f"{name}:"
    for piece in pieces:
        if len(line) + 1 + len(piece) > LINE and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + piece
    lines.append(line)
    return "\r\n".join(lines)


def header(name: str, value: str) -> str:
    """`Name: value` as it goes on the wire: ASCII folded at spaces, anything else as encoded words."""
    if value.isascii() and all(0x20 <= ord(c) < 0x7F for c in value):
        parts = value.split(" ")
        if all(parts):  # single spaces only: folding at them unfolds back to the same text
            return _fold(name, parts)
    return _fold(name, _q_word_chunks(value, 75))


def mailbox(display_name: str, address: str) -> str:
    """A display name for an address header: plain, quoted, or encoded words."""
    if not display_name:
        return f"<{address}>"
    if display_name.isascii() and all(c in _ATOM for c in display_name):
        return f"{display_name} <{address}>"
    if display_name.isascii() and display_name.isprintable():
        escaped = display_name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}" <{address}>'
    return " ".join(_q_word_chunks(display_name, 75)) + f" <{address}>"


def quoted_printable(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line ends and soft breaks under 76 characters."""
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\n", b"\r\n")


def _part(subtype: str, body: str) -> bytes:
    return (f"Content-Type: text/{subtype}; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode() + quoted_printable(body)


def build_eml(message: Message, recipient: Recipient, settings: Settings, sent_at: datetime | None = None) -> bytes:
    domain = settings.org_email.rpartition("@")[2]
    # "=_" never occurs in quoted-printable output, so no body line can look like this boundary.
    boundary = f"=_herald_{secrets.token_hex(12)}"
    headers = [
        f"From: {mailbox(settings.org_name, settings.org_email)}",
        f"To: {mailbox(recipient.name, recipient.email)}",
        header("Subject", message.subject),
        f"Date: {format_datetime((sent_at or datetime.now(UTC)).astimezone(UTC))}",
        f"Message-ID: {make_msgid(domain=domain)}",
        f"List-Id: <{settings.list_id}>",
    ]
    unsubscribe = recipient.links.get("unsubscribe")
    if unsubscribe:
        headers += [f"List-Unsubscribe: <{unsubscribe}>,\r\n <mailto:{settings.org_email}?subject=unsubscribe>",
                    "List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
    headers += ["Auto-Submitted: auto-generated", "MIME-Version: 1.0",
                f'Content-Type: multipart/alternative; boundary="{boundary}"']
    separator = f"\r\n--{boundary}\r\n".encode()
    return b"".join([
        "\r\n".join(headers).encode("ascii"), b"\r\n", separator,
        _part("plain", message.text), separator, _part("html", message.html),
        f"\r\n--{boundary}--\r\n".encode(),
    ])
