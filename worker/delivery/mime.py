"""Builds a complete .eml by hand: multipart/alternative, text first, quoted-printable, RFC 2047 headers.

Every header line holds at most 78 characters and every encoded word 75 (RFC 5322 2.1.1, RFC 2047 2),
display names included (only a URL or address longer than a line passes). Addresses go out with their
domain as an A-label; a local part that is not ASCII makes the To header UTF-8 (RFC 6532), which only a
server that offers SMTPUTF8 takes (worker/delivery/smtp.py).

An invitation adds its calendar the way Gmail and Outlook send one (RFC 6047): inline as a third
alternative, and again as an invite.ics attachment for clients that only offer attachments.

The email package folds some headers so that they do not read back as written (a subject comes back
with a leading or doubled space), and it costs milliseconds per message. Writing the bytes here keeps
every header exact and gives the campaign engine a builder it can precompute parts of.
"""

from __future__ import annotations

import binascii
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby

from foundation.settings import Settings
from worker.delivery.smtp import ascii_domain
from worker.events.ics import CalendarTemplate, content_type
from worker.rendering.render import CompiledEdition, Recipient, SlotTemplate

LINE = 78  # RFC 5322 2.1.1: a header line should hold at most 78 characters
WORD = 75  # RFC 2047 2: an encoded word holds at most 75
_FRAME = len("=?utf-8?q??=")
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_ATEXT = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _q(text: str) -> str:
    return "".join(chr(b) if b in _Q_SAFE else ("_" if b == 0x20 else f"={b:02X}") for b in text.encode())


def _b(text: str) -> str:
    return binascii.b2a_base64(text.encode(), newline=False).decode("ascii")


def _encoded_words(value: str, first: int) -> list[str]:
    """`value` as RFC 2047 encoded words, never cut inside a character: the first at most `first` characters
    long (it may share its line with the header's name), the others at most WORD. Q keeps Latin text
    readable; B, when Q would not fit one word and B is shorter, lets a Greek or Chinese name fit one (_phrase)."""
    q = len(_q(value))
    encoding, encode = ("q", _q) if q <= max(first - _FRAME, len(_b(value))) else ("b", _b)
    words, chunk, room = [], "", first
    for char in value:
        if chunk and len(encode(chunk + char)) > room - _FRAME:
            words.append(f"=?utf-8?{encoding}?{encode(chunk)}?=")
            chunk, room = "", WORD
        chunk += char
    words.append(f"=?utf-8?{encoding}?{encode(chunk)}?=")
    return words


def fold(name: str, pieces: list[str]) -> str:
    """Join `pieces` with spaces into a header, breaking the line before a piece that would pass LINE; only
    a piece longer than a line by itself (a long URL or address) passes it. Before the first piece the
    break comes right after the colon (legal FWS), and only when the piece then fits: a reader that
    keeps that fold as a leading space (Python's, for List-Unsubscribe) sees one only where it helped."""
    lines, line = [], f"{name}:"
    for piece in pieces:
        if len(line) + 1 + len(piece) > LINE and line and (line != f"{name}:" or 1 + len(piece) <= LINE):
            lines.append(line)
            line = ""
        line += " " + piece
    lines.append(line)
    return "\r\n".join(lines)


def _plain(text: str) -> bool:
    """Printable ASCII that no reader takes for an encoded word."""
    return text.isascii() and text.isprintable() and "=?" not in text


def header(name: str, value: str) -> str:
    """`Name: value` as it goes on the wire: plain text folded at its single spaces when every word fits a
    line, anything else as encoded words. A fold after the colon would read back as a leading space here
    (an unstructured header), so the first word is made to fit after the name."""
    first = LINE - len(name) - 2
    words = value.split(" ")
    if _plain(value) and all(words) and len(words[0]) <= first and all(len(word) < LINE for word in words):
        return fold(name, words)
    return fold(name, _encoded_words(value, min(WORD, first)))


def _word(text: str) -> str | None:
    """One word of a display name as an atom or quoted string; None when it must be encoded."""
    if not _plain(text):
        return None
    written = text if all(c in _ATEXT for c in text) else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return written if len(written) < LINE else None


def _phrase(display_name: str, first: int) -> list[str]:
    """A display name as the pieces an address header folds between (RFC 5322 3.2.5 and 2.2.3).

    A word that can stand as itself (an atom or quoted string) does, so the name stays readable and
    its spaces are the folds. A run of words that cannot (not ASCII, longer than a line, or text a
    reader would decode as an encoded word) becomes encoded words, and a fold between two of those is
    no space to an RFC 2047 reader (6.2). Python 3.11 reads such a fold as a space (CPython gh-128110),
    so a run takes one encoded word whenever it fits one, which names of people and organisations do.
    Control characters become spaces and runs of spaces one: a reader must never decode a CR LF.
    """
    words = [word for word in _CONTROLS.sub(" ", display_name).split(" ") if word]
    pieces: list[str] = []
    for plain, group in groupby(((word, _word(word)) for word in words), key=lambda pair: pair[1] is not None):
        run = list(group)
        if plain:
            pieces += [written for _, written in run]
        else:
            pieces += _encoded_words(" ".join(word for word, _ in run), WORD if pieces else first)
    return pieces


def address_header(name: str, display_name: str, address: str) -> str:
    """An address header (From, To) folded like every other: the display name's pieces, then `<address>`."""
    return fold(name, [*_phrase(display_name, min(WORD, LINE - len(name) - 2)), f"<{address}>"])


def quoted_printable(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line ends and soft breaks under 76 characters."""
    encoded = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), quotetabs=False, istext=True, header=False)
    return encoded.replace(b"\n", b"\r\n")


def _part_head(subtype: str) -> bytes:
    return (f"Content-Type: text/{subtype}; charset=utf-8\r\n"
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n").encode()


def _qp_piece(text: str, more: bool) -> bytes:
    """quoted_printable(text) ending at a line end, so that a piece encoded apart can follow it.

    When `text` stops mid-line and more follows, a soft line break ends it; b2a_qp lets the last
    line reach 76 characters before a line end, so such a line gives up its last character first.
    """
    encoded = quoted_printable(text)
    if not more or not encoded or encoded.endswith(b"\r\n"):
        return encoded
    if len(encoded) - encoded.rfind(b"\n") - 1 >= 76:
        encoded = encoded[:-1] + b"=\r\n" + encoded[-1:]
    return encoded + b"=\r\n"


# Base64 lines of 76 characters: 57 octets each. "=" only pads the end of a line, so "=_" never occurs.
_B64_OCTETS = 57


def base64_lines(data: bytes) -> bytes:
    """Base64 in lines of at most 76 characters, each ending in CRLF."""
    return b"".join(binascii.b2a_base64(data[start:start + _B64_OCTETS], newline=False) + b"\r\n"
                    for start in range(0, len(data), _B64_OCTETS))


def _base64_head(headers: str) -> bytes:
    """A part's headers (CRLF between them) with its transfer encoding, through the blank line."""
    return (headers + "\r\nContent-Transfer-Encoding: base64\r\n\r\n").encode("ascii")


def _date(moment: datetime) -> str:
    """RFC 5322 date in UTC, independent of the locale."""
    t = moment.astimezone(UTC)
    return (f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
            f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} +0000")


def message_id(domain: str) -> str:
    """A unique Message-ID; make_msgid asks the system for the host name and costs far more."""
    return f"<{secrets.token_hex(16)}@{domain}>"


# A line with slots up to this long is filled and encoded whole; a longer one (MRML writes the
# HTML as one line of tens of kilobytes) is cut at its slots with soft line breaks.
_WHOLE_LINE = 1000
_SMALL_GAP = 256


def _pieces(template: SlotTemplate) -> list[str | tuple[str, ...]]:
    """The template as fixed text (str) and fragments to fill per recipient (SlotTemplate parts)."""
    lines, line = [], [""]
    for index, part in enumerate(template.parts):
        if index % 2:
            line += [part, ""]
            continue
        *ended, rest = part.split("\n")
        for chunk in ended:
            line[-1] += chunk + "\n"
            lines.append(line)
            line = [""]
        line[-1] += rest
    if line != [""]:
        lines.append(line)
    pieces: list[str | tuple[str, ...]] = []
    for line in lines:
        if len(line) == 1:
            pieces.append(line[0])
        elif sum(map(len, line)) <= _WHOLE_LINE:
            pieces.append(tuple(line))
        else:
            pieces += [("", part, "") if index % 2 else part for index, part in enumerate(line)]
    # Each fragment costs a call per recipient: neighbouring fragments become one, and so do two
    # fragments with a little fixed text between them (the HTML's short runs between its links).
    merged: list[str | tuple[str, ...]] = []
    for piece in pieces:
        if isinstance(piece, str):
            if merged and isinstance(merged[-1], str):
                merged[-1] += piece
            elif piece:
                merged.append(piece)
            continue
        gap = ""
        if len(merged) >= 2 and isinstance(merged[-1], str) and len(merged[-1]) < _SMALL_GAP:
            gap = merged.pop()  # merged[-2], now last, is a fragment: pieces alternate kinds
        if merged and isinstance(merged[-1], tuple):
            last = merged.pop()
            piece = (*last[:-1], last[-1] + gap + piece[0], *piece[1:])
        merged.append(piece)
    return merged


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Skeleton:
    """One (campaign, edition) message with everything but the recipient's parts already encoded.

    Quoted-printable encoding of the whole body costs more than a millisecond; a campaign sends
    hundreds of messages a second from one compiled edition, so the fixed headers and every slot-free
    stretch of the bodies are encoded once, and each recipient costs only their slots' encoding.
    """

    domain: str
    _edition: CompiledEdition
    _from: bytes
    _head: bytes  # the headers that follow the per-recipient ones, through the top Content-Type
    _mailto: str
    _body: tuple[bytes, ...]  # b"" where a filled fragment goes
    _holes: tuple[tuple[int, int, SlotTemplate, bool], ...]  # (position in _body, 0 text / 1 html, fragment, more follows)
    _frame: tuple[bytes, bytes, bytes]  # before the text, between text and html, after the html
    # An invitation's calendar when it names the recipient (REQUEST, CANCEL); a PUBLISH is all in _body.
    _calendar: CalendarTemplate | None = None
    _calendar_fixed: int = 0  # octets of each recipient's calendar already encoded in _body
    _calendar_holes: tuple[int, ...] = ()  # positions in _body of the rest, inline and attached

    @classmethod
    def prepare(cls, compiled: CompiledEdition, settings: Settings, *, feedback_id: str,
                subject_prefix: str = "", calendar: CalendarTemplate | None = None) -> Skeleton:
        """With `calendar`, an invitation: multipart/mixed around the alternatives and invite.ics."""
        if not (feedback_id.isascii() and feedback_id.isprintable() and " " not in feedback_id):
            raise ValueError(f"Feedback-ID {feedback_id!r}: printable ASCII without spaces only")
        # "=_" never occurs in quoted-printable or base64 output, so no body line can look like a boundary.
        # An invitation's two boundaries are as long as each other and differ, so neither begins the other.
        token = secrets.token_hex(12)
        boundary = f"=_herald_{token}" if calendar is None else f"=_herald_a{token}"
        outer = f"=_herald_m{token}"
        alternative = fold("Content-Type", ["multipart/alternative;", f'boundary="{boundary}"'])
        head = [header("Subject", subject_prefix + compiled.subject), f"List-Id: <{settings.list_id}>",
                f"Feedback-ID: {feedback_id}:herald", "Auto-Submitted: auto-generated", "MIME-Version: 1.0",
                alternative if calendar is None else fold("Content-Type", ["multipart/mixed;", f'boundary="{outer}"'])]
        separator = f"\r\n--{boundary}\r\n".encode()
        if calendar is None:
            frame = (separator + _part_head("plain"), separator + _part_head("html"), f"\r\n--{boundary}--\r\n".encode())
        else:
            frame = (f"\r\n--{outer}\r\n{alternative}\r\n".encode() + separator + _part_head("plain"),
                     separator + _part_head("html"),
                     separator + _base64_head(header("Content-Type", content_type(calendar.method))))

        body: list[bytes] = []
        holes: list[tuple[int, int, SlotTemplate, bool]] = []
        for kind, template in enumerate((compiled.text, compiled.html)):
            body.append(frame[kind])
            pieces = _pieces(template)
            for number, piece in enumerate(pieces):
                more = number < len(pieces) - 1
                if isinstance(piece, str):
                    body.append(_qp_piece(piece, more))
                else:
                    holes.append((len(body), kind, SlotTemplate(piece), more))
                    body.append(b"")
        body.append(frame[2])

        attendee: CalendarTemplate | None = None
        fixed, calendar_holes = 0, []
        if calendar is not None:
            # A PUBLISH is the same for everyone. A REQUEST or CANCEL names its recipient in one line
            # near the end: the lines before it are encoded here, in whole base64 lines (57 octets each).
            if calendar.method == "PUBLISH":
                encoded = base64_lines(calendar.without_attendee())
            else:
                attendee, fixed = calendar, len(calendar.head) - len(calendar.head) % _B64_OCTETS
                encoded = base64_lines(calendar.head[:fixed])
            attachment = (f"\r\n--{boundary}--\r\n\r\n--{outer}\r\n".encode()
                          + _base64_head('Content-Type: application/ics; name="invite.ics"\r\n'
                                         'Content-Disposition: attachment; filename="invite.ics"'))
            for part in ([encoded], [attachment, encoded]):  # inline (its head is frame[2]), then attached
                body += part
                if attendee is not None:
                    calendar_holes.append(len(body))
                    body.append(b"")
            body.append(f"\r\n--{outer}--\r\n".encode())
        return cls(domain=ascii_domain(settings.org_email).rpartition("@")[2], _edition=compiled,
                   _from=(address_header("From", settings.org_name, ascii_domain(settings.org_email)) + "\r\n").encode(),
                   _head=("\r\n".join(head) + "\r\n").encode("ascii"),
                   _mailto=f"<mailto:{settings.org_email}?subject=unsubscribe>",
                   _body=tuple(body), _holes=tuple(holes), _frame=frame,
                   _calendar=attendee, _calendar_fixed=fixed, _calendar_holes=tuple(calendar_holes))

    def build(self, recipient: Recipient, *, message_id: str, sent_at: datetime) -> bytes:
        """The complete message for `recipient`, CRLF line ends throughout."""
        return b"".join(self._pieces(recipient, message_id, sent_at))

    def _pieces(self, recipient: Recipient, message_id: str, sent_at: datetime) -> list[bytes]:
        lines = [address_header("To", recipient.name, ascii_domain(recipient.email)), f"Date: {_date(sent_at)}",
                 f"Message-ID: {message_id}"]
        unsubscribe = recipient.links.get("unsubscribe")
        if unsubscribe:
            lines += [fold("List-Unsubscribe", [f"<{unsubscribe}>,", self._mailto]),
                      "List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
        head = [self._from, ("\r\n".join(lines) + "\r\n").encode(), self._head]

        html_values, text_values = self._edition.values(recipient)
        values = (text_values, html_values)
        body = list(self._body)
        for position, kind, fragment, more in self._holes:
            body[position] = _qp_piece(fragment.fill(values[kind]), more)
        if self._calendar is not None:
            own = self._calendar.for_attendee(recipient.name, recipient.email)
            encoded = base64_lines(own[self._calendar_fixed:])
            for position in self._calendar_holes:
                body[position] = encoded
        return head + body


def build_eml(compiled: CompiledEdition, recipient: Recipient, settings: Settings, *, feedback_id: str,
              sent_at: datetime | None = None, calendar: CalendarTemplate | None = None) -> bytes:
    """One message on its own (`herald render`): the campaign writer, prepared for a single use."""
    skeleton = Skeleton.prepare(compiled, settings, feedback_id=feedback_id, calendar=calendar)
    return skeleton.build(recipient, message_id=message_id(skeleton.domain), sent_at=sent_at or datetime.now(UTC))
