"""Invitations with their calendar (RFC 6047), as Gmail and Outlook send them, read back by Python's parsers.

multipart/mixed holds the alternatives (text, HTML, text/calendar with its method) and the same
calendar again as invite.ics, for clients that only offer attachments.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import replace
from datetime import UTC, datetime
from email.message import EmailMessage

import icalendar
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

import worker.delivery.mime
from tests.conftest import FIXTURES, parse_eml
from worker.authoring.content import Item, load_item
from worker.delivery.mime import Skeleton, base64_lines
from worker.events import ics
from worker.rendering.render import CompiledEdition, Recipient, Renderer, SlotTemplate

DTSTAMP = datetime(2027, 1, 10, 8, 30, 15, tzinfo=UTC)
SENT_AT = datetime(2027, 1, 10, 9, 0, tzinfo=UTC)
ORGANISER = ("Primăria Municipiului Botoșani", "proiecte@primariabt.ro")
ANA = Recipient(email="ana@example.org", name="Ana Popescu", timezone="America/New_York",
                links={"unsubscribe": "https://h.example/u/1", "view": "https://h.example/v/1",
                       "rsvp_yes": "https://h.example/r/1?a=yes", "rsvp_no": "https://h.example/r/1?a=no"})
ION = Recipient(email="ion.ionescu@example.ro", name="Ion Ionescu", links={"unsubscribe": "https://h.example/u/2"})
ROMANIAN = Recipient(email="stefan@example.ro", name="Ștefan Țăranu-Șerban, Iași")
# (METHOD, STATUS): the three methods, and a published event that was cancelled (RFC 5546 3.2.1).
CASES = [("REQUEST", None), ("PUBLISH", None), ("CANCEL", None), ("PUBLISH", "CANCELLED")]


@pytest.fixture(scope="module")
def item() -> Item:
    return load_item(FIXTURES / "event")


@pytest.fixture(scope="module")
def invitation(renderer: Renderer, item: Item) -> CompiledEdition:
    return renderer.compile(item, "both", "invitation")


def calendar_for(item: Item, method: ics.Method, status: ics.Status | None = None) -> ics.CalendarTemplate:
    return ics.CalendarTemplate.prepare(
        ics.EventTimes.of(item.meta), method=method, uid=ics.uid_for(item.slug, "example.org"),
        sequence=1 if method == "CANCEL" or status == "CANCELLED" else 0, dtstamp=DTSTAMP,
        organiser=ORGANISER, summary=item.texts["ro"].front.title,
        location=f"{item.meta.venue.address}, {item.meta.venue.city}", status=status)


def expected_calendar(template: ics.CalendarTemplate, recipient: Recipient) -> bytes:
    if template.method == "PUBLISH":
        return template.without_attendee()
    return template.for_attendee(recipient.name, recipient.email)


def build(skeleton: Skeleton, recipient: Recipient) -> bytes:
    return skeleton.build(recipient, message_id="<1@example.org>", sent_at=SENT_AT)


def shape(part: EmailMessage) -> str | tuple:
    """The MIME tree as content types: a leaf's type, or (multipart type, [children])."""
    if not part.is_multipart():
        return part.get_content_type()
    return part.get_content_type(), [shape(child) for child in part.iter_parts()]


INVITATION_SHAPE = ("multipart/mixed", [("multipart/alternative", ["text/plain", "text/html", "text/calendar"]),
                                        "application/ics"])


def parts(parsed: EmailMessage) -> tuple[EmailMessage, EmailMessage, EmailMessage, EmailMessage]:
    """text, html, inline calendar, attached calendar."""
    alternative, attachment = parsed.get_payload()
    text, html, inline = alternative.get_payload()
    return text, html, inline, attachment


def read_calendar(data: bytes) -> tuple[icalendar.Calendar, icalendar.Event]:
    parsed = icalendar.Calendar.from_ical(data)
    (event,) = parsed.walk("VEVENT")
    assert parsed.errors == [] and all(not component.errors for component in parsed.walk())
    return parsed, event


def attendees(event: icalendar.Event) -> list:
    found = event.get("ATTENDEE", [])
    return found if isinstance(found, list) else [found]


def assert_well_formed(eml: bytes, parsed: EmailMessage) -> None:
    """No parser defects, CRLF only, every body line within 76 characters."""
    assert not parsed.defects and not any(part.defects for part in parsed.walk())
    assert b"\r" not in eml.replace(b"\r\n", b"") and b"\n" not in eml.replace(b"\r\n", b"")
    assert all(len(line) <= 76 for line in eml.split(b"\r\n\r\n", 1)[1].split(b"\r\n"))


@pytest.mark.parametrize(("method", "status"), CASES, ids=lambda value: value or "default")
def test_invitation_layout(renderer, invitation, item, method, status):
    template = calendar_for(item, method, status)
    eml = build(Skeleton.prepare(invitation, renderer.settings, feedback_id="c:invitation:both", calendar=template), ANA)
    parsed = parse_eml(eml)
    assert_well_formed(eml, parsed)
    assert shape(parsed) == INVITATION_SHAPE
    text, html, inline, attachment = parts(parsed)

    # The inline calendar: its method parameter says what its METHOD line says (RFC 6047 2.4).
    data = inline.get_payload(decode=True)
    assert data == expected_calendar(template, ANA)
    calendar, event = read_calendar(data)
    assert calendar["METHOD"] == method == inline.get_param("method")
    assert f"\r\nContent-Type: {ics.content_type(method)}\r\n".encode() in eml  # as written, unquoted method
    assert inline["Content-Type"].params["charset"] == "UTF-8" and inline.get_content_charset() == "utf-8"
    assert inline["Content-Transfer-Encoding"] == "base64" and inline.get_content_disposition() is None
    assert inline.get_content() == data.decode("utf-8")
    assert event["STATUS"] == (status or ("CANCELLED" if method == "CANCEL" else "CONFIRMED"))

    # The same bytes again as an attachment.
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "invite.ics" and attachment.get_param("name") == "invite.ics"
    assert attachment["Content-Transfer-Encoding"] == "base64"
    assert attachment.get_payload(decode=True) == data

    # Who is asked: the recipient for a REQUEST (to reply) and a CANCEL; nobody for a PUBLISH.
    people = attendees(event)
    if method == "PUBLISH":
        assert people == []
    else:
        (attendee,) = people
        assert str(attendee) == f"mailto:{ANA.email}" and attendee.params["CN"] == ANA.name
        assert attendee.params.get("RSVP") == ("TRUE" if method == "REQUEST" else None)
    assert str(event["ORGANIZER"]) == f"mailto:{ORGANISER[1]}" and event["ORGANIZER"].params["CN"] == ORGANISER[0]

    # The text and HTML are what stage 2 gives, as without a calendar.
    expected = invitation.personalise(ANA)
    assert text.get_content().replace("\r\n", "\n") == expected.text
    assert html.get_content().replace("\r\n", "\n") == expected.html
    for part in (text, html):
        assert part["Content-Transfer-Encoding"] == "quoted-printable" and part.get_content_charset() == "utf-8"
    assert parsed["Subject"] == invitation.subject and parsed["To"].addresses[0].addr_spec == ANA.email


def test_boundaries_differ_and_only_delimiter_lines_look_like_them(renderer, invitation, item):
    eml = build(Skeleton.prepare(invitation, renderer.settings, feedback_id="c:i:both",
                                 calendar=calendar_for(item, "REQUEST")), ANA)
    parsed = parse_eml(eml)
    outer, inner = parsed.get_boundary(), parsed.get_payload()[0].get_boundary()
    assert outer != inner and not outer.startswith(inner) and not inner.startswith(outer)
    assert outer.startswith("=_herald_") and inner.startswith("=_herald_")
    delimiters = {f"--{b}".encode() for b in (outer, inner)} | {f"--{b}--".encode() for b in (outer, inner)}
    body = eml.split(b"\r\n\r\n", 1)[1]
    assert {line for line in body.split(b"\r\n") if b"=_herald_" in line and line.startswith(b"--")} == delimiters
    assert [line.startswith(b"--=_herald_") for line in body.split(b"\r\n")].count(True) == 7  # outer: 2 and its close; inner: 3 and its close


def test_each_recipient_of_one_skeleton_gets_their_own_attendee(renderer, invitation, item):
    template = calendar_for(item, "REQUEST")
    skeleton = Skeleton.prepare(invitation, renderer.settings, feedback_id="c:i:both", calendar=template)
    for recipient in (ANA, ION, ROMANIAN):
        parsed = parse_eml(build(skeleton, recipient))
        _, _, inline, attachment = parts(parsed)
        data = inline.get_payload(decode=True)
        assert data == attachment.get_payload(decode=True) == template.for_attendee(recipient.name, recipient.email)
        (attendee,) = attendees(read_calendar(data)[1])
        assert str(attendee) == f"mailto:{recipient.email}" and attendee.params["CN"] == recipient.name
        assert attendee.params["RSVP"] == "TRUE" and attendee.params["PARTSTAT"] == "NEEDS-ACTION"
        expected = invitation.personalise(recipient)
        text, html, *_ = parts(parsed)
        assert text.get_content().replace("\r\n", "\n") == expected.text
        assert html.get_content().replace("\r\n", "\n") == expected.html


def test_a_romanian_name_round_trips_in_the_attendee(renderer, invitation, item):
    for method in ("REQUEST", "CANCEL"):
        skeleton = Skeleton.prepare(invitation, renderer.settings, feedback_id="c:i:ro",
                                    calendar=calendar_for(item, method))
        parsed = parse_eml(build(skeleton, ROMANIAN))
        data = parts(parsed)[2].get_payload(decode=True)
        (attendee,) = attendees(read_calendar(data)[1])
        assert attendee.params["CN"] == "Ștefan Țăranu-Șerban, Iași"
        assert "ATTENDEE;CN=\"Ștefan Țăranu-Șerban, Iași\"" in data.decode("utf-8").replace("\r\n ", "")
        assert parsed["To"].addresses[0].addr_spec == ROMANIAN.email


def test_per_recipient_work_is_the_slots_and_the_attendee_lines(renderer, invitation, item):
    """The fixed calendar, like the fixed bodies, is encoded once: recipients share those very objects."""
    plain = Skeleton.prepare(invitation, renderer.settings, feedback_id="c:i:both")
    own_plain = [i for i, (x, y) in enumerate(zip(plain._pieces(ANA, "<1@x>", SENT_AT),
                                                 plain._pieces(ION, "<2@x>", SENT_AT))) if x is not y]
    for method, extra in (("REQUEST", 2), ("CANCEL", 2), ("PUBLISH", 0)):
        template = calendar_for(item, method)
        skeleton = Skeleton.prepare(invitation, renderer.settings, feedback_id="c:i:both", calendar=template)
        a, b = skeleton._pieces(ANA, "<1@x>", SENT_AT), skeleton._pieces(ION, "<2@x>", SENT_AT)
        assert len(a) == len(b)
        own = [index for index, (x, y) in enumerate(zip(a, b)) if x is not y]
        assert len(own) == len(own_plain) + extra, method
        if extra:
            # Each attendee's own base64 is a few lines: under a line of the fixed head, their ATTENDEE
            # line and END:VEVENT/END:VCALENDAR; the rest of the calendar was encoded once.
            first, second = own[-extra:]
            assert a[first] is a[second]
            whole = template.for_attendee(ANA.name, ANA.email)
            tail = binascii.a2b_base64(a[first].replace(b"\r\n", b""))
            assert whole.endswith(tail) and len(whole) - len(tail) > len(template.head) - 57


def test_base64_lines():
    for size in (0, 1, 56, 57, 58, 114, 1000):
        data = bytes(range(256)) * 4
        encoded = base64_lines(data[:size])
        assert binascii.a2b_base64(encoded.replace(b"\r\n", b"")) == data[:size]
        assert all(len(line) == 76 for line in encoded.split(b"\r\n")[:-2])
        assert encoded.endswith(b"\r\n") == (size > 0) and b"=_" not in encoded
    # Encoding in whole lines of 57 octets and concatenating gives what encoding at once gives.
    data = bytes(range(256)) * 3
    assert base64_lines(data[:114]) + base64_lines(data[114:]) == base64_lines(data)


def test_without_a_calendar_nothing_changes(renderer, invitation, monkeypatch):
    monkeypatch.setattr(worker.delivery.mime.secrets, "token_hex", lambda nbytes=None: "ab" * (nbytes or 16))
    before = build(Skeleton.prepare(invitation, renderer.settings, feedback_id="c:i:both"), ANA)
    assert build(Skeleton.prepare(invitation, renderer.settings, feedback_id="c:i:both", calendar=None), ANA) == before
    parsed = parse_eml(before)
    assert shape(parsed) == ("multipart/alternative", ["text/plain", "text/html"])
    assert re.search(rb'Content-Type: multipart/alternative;\r\n boundary="=_herald_(ab){12}"\r\n', before)
    assert b"text/calendar" not in before and b"invite.ics" not in before


# Names as people write them, Romanian letters and the characters a parameter value must quote likely.
names = st.text(st.one_of(st.characters(blacklist_categories=("Cc", "Cs")), st.sampled_from("șțȘȚăîâ ,;:\"^")),
                max_size=40)


@hypothesis_settings(max_examples=60, deadline=None)
@given(name=names, method=st.sampled_from(["REQUEST", "CANCEL"]))
def test_any_name_reads_back_from_the_attendee(renderer, invitation, item, name, method):
    recipient = Recipient(email="x@example.org", name=name)
    template = calendar_for(item, method)
    compiled = replace(invitation, text=SlotTemplate.parse("⟦greeting_ro⟧\n"),
                       html=SlotTemplate.parse("<p>⟦greeting_ro⟧</p>\n"))
    eml = build(Skeleton.prepare(compiled, renderer.settings, feedback_id="c:i:ro", calendar=template), recipient)
    parsed = parse_eml(eml)
    assert_well_formed(eml, parsed)
    data = parts(parsed)[2].get_payload(decode=True)
    assert data == template.for_attendee(name, recipient.email)
    (attendee,) = attendees(read_calendar(data)[1])
    assert attendee.params.get("CN") == (name if name.strip() else None)
