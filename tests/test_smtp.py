"""The sending edge against a real SMTP server (the sink, scripted to refuse): every reply sorted right,
final refusals sorted into bounces and rejections (worker.delivery.smtp.PERMANENT), internationalised addresses."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from headers import addr_spec
from hypothesis import given
from hypothesis import strategies as st
from servers import free_port
from smtp_faults import ScriptedSink

from foundation.smtp_url import SmtpTarget, parse_smtp_url
from tests.conftest import FIXTURES, parse_eml
from worker.authoring.content import load_item
from worker.delivery import smtp
from worker.delivery.mime import Skeleton
from worker.delivery.smtp import (
    PERMANENT,
    Outcome,
    SmtpSender,
    dot_stuffed,
    offers_smtputf8,
)
from worker.rendering.render import Recipient, Renderer

FROM = "urbact@herald.localhost"
TO = "ana@example.org"
MESSAGE = b"Subject: Buletin\r\nFrom: urbact@herald.localhost\r\n\r\nBun\xc4\x83 ziua\r\n"


@pytest.fixture(params=["pipelining", "one command at a time"])
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScriptedSink]:
    """The sink with and without RFC 2920: every reply is sorted the same on both of the sender's paths."""
    with ScriptedSink(tmp_path / "outbox", pipelining=request.param == "pipelining") as running:
        yield running


@pytest.fixture
def sender(sink: ScriptedSink) -> Iterator[SmtpSender]:
    with SmtpSender(parse_smtp_url(sink.url), timeout=10) as sending:
        yield sending


def test_parse_smtp_url():
    assert parse_smtp_url("smtp://news%40ong.ro:p%40ss:w@mail.ong.ro:2525?security=tls") == SmtpTarget(
        host="mail.ong.ro", port=2525, user="news@ong.ro", password="p@ss:w", security="tls")
    assert parse_smtp_url("smtp://mail.ong.ro") == SmtpTarget("mail.ong.ro", 587, "", "", "starttls")
    assert parse_smtp_url("smtp://u:p@mail.ong.ro?security=tls").port == 465
    assert parse_smtp_url("smtp://127.0.0.1?security=none").port == 25
    assert "secret" not in repr(parse_smtp_url("smtp://u:secret@mail.ong.ro"))


@pytest.mark.parametrize(("url", "says"), [
    ("smtps://u:secret@mail.ong.ro", "must start with smtp://"),
    ("mail.ong.ro:587", "must start with smtp://"),
    ("smtp://u:secret@:587", "names no host"),
    ("smtp://u:secret@mail.ong.ro:port", "port that is not a number"),
    ("smtp://u:secret@mail.ong.ro?security=ssl", "use starttls (port 587), tls (port 465) or none"),
    ("smtp://u:secret@mail.ong.ro?tls=1", "unknown parameters tls"),
    ("smtp://:secret@mail.ong.ro", "a password but no user name"),
])
def test_a_bad_smtp_url_says_what_to_write_and_never_shows_the_password(url, says):
    with pytest.raises(ValueError, match=r"HERALD_SMTP_URL") as raised:
        parse_smtp_url(url)
    assert says in str(raised.value) and "secret" not in str(raised.value)


def test_a_message_is_sent_and_stored_as_sent(sink, sender):
    outcome = sender.send(FROM, "ana@example.org", MESSAGE)
    assert (outcome.status, outcome.code) == ("sent", 250)
    [stored] = sink.handler.outbox.glob("*.eml")
    assert stored.read_bytes() == MESSAGE


def test_lines_that_start_with_a_dot_arrive_as_written(sink, sender):
    body = b"Subject: Puncte\r\n\r\n.\r\n..two\r\n. space\r\nend.\r\n.\r\n"
    assert sender.send(FROM, "ana@example.org", body).status == "sent"
    [stored] = sink.handler.outbox.glob("*.eml")
    assert stored.read_bytes() == body


@given(st.binary(max_size=300).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b"\r\n")))
def test_dot_stuffing_is_smtplibs_rule(message):
    expected = re.sub(rb"(?m)^\.", b"..", message)  # what smtplib's data() sends
    assert dot_stuffed(message) == (expected if expected.endswith(b"\r\n") else expected + b"\r\n")


def test_one_connection_carries_many_messages(sink, sender):
    outcomes = [sender.send(FROM, f"person{number}@example.org", MESSAGE) for number in range(20)]
    assert {outcome.status for outcome in outcomes} == {"sent"}
    assert (sink.handler.connections, sink.handler.accepted) == (1, 20)


@pytest.mark.parametrize("stage", ["MAIL", "RCPT", "DATA"])
def test_421_is_temporary_and_the_next_send_reconnects(sink, sender, stage):
    sender.send(FROM, "ana@example.org", MESSAGE)
    sink.handler.fail_next(2, 421, at=stage)
    first, second, third = (sender.send(FROM, "ana@example.org", MESSAGE) for _ in range(3))
    assert (first.status, first.code, second.status, second.code) == ("temporary", 421, "temporary", 421)
    assert first.detail.startswith(f"{stage} 421 4.3.2")
    assert third.status == "sent"
    assert sink.handler.connections == 3 and sink.handler.accepted == 2


def test_451_is_temporary(sink, sender):
    sink.handler.fail_next(1, 451, at="RCPT")
    assert sender.send(FROM, "ana@example.org", MESSAGE) == Outcome(
        "temporary", 451, "RCPT 451 4.3.0 Local error, try again later")
    assert sender.send(FROM, "ana@example.org", MESSAGE).status == "sent"


def test_an_unknown_mailbox_is_permanent_and_the_connection_goes_on(sink, sender):
    sink.handler.unknown.add("gone@example.org")
    refused = sender.send(FROM, "gone@example.org", MESSAGE)
    assert refused == Outcome("permanent", 550, "RCPT 550 5.1.1 <address>: mailbox unavailable")
    assert sender.send(FROM, "ana@example.org", MESSAGE).status == "sent"
    assert (sink.handler.connections, sink.handler.accepted) == (1, 1)


def test_a_closed_port_is_temporary():
    with SmtpSender(parse_smtp_url(f"smtp://127.0.0.1:{free_port()}?security=none"), timeout=5) as sender:
        outcome = sender.send(FROM, "ana@example.org", MESSAGE)
    assert (outcome.status, outcome.code) == ("temporary", None)
    assert outcome.detail.startswith("connect: ConnectionRefusedError")


def test_a_server_that_never_answers_is_temporary_after_the_timeout():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections (backlog), says nothing
        url = f"smtp://127.0.0.1:{silent.getsockname()[1]}?security=none"
        with SmtpSender(parse_smtp_url(url), timeout=0.5) as sender:
            outcome = sender.send(FROM, "ana@example.org", MESSAGE)
    assert (outcome.status, outcome.code) == ("temporary", None)
    assert "timed out" in outcome.detail


def test_a_server_that_went_away_is_temporary_and_a_new_one_is_found(tmp_path: Path):
    with ScriptedSink(tmp_path / "first") as first:
        sender = SmtpSender(parse_smtp_url(first.url), timeout=5)
        assert sender.send(FROM, "ana@example.org", MESSAGE).status == "sent"
    outcome = sender.send(FROM, "ana@example.org", MESSAGE)
    assert outcome.status == "temporary"
    with ScriptedSink(tmp_path / "second", port=first.port) as second, sender:
        assert sender.send(FROM, "ana@example.org", MESSAGE).status == "sent"
        assert second.handler.accepted == 1


# ---- final refusals: a bounce, or only this delivery failed ----------------------------------------

# (the PERMANENT row it shows, stage, the server's reply, what Herald makes of it)
REPLIES = [
    ("5.1", "RCPT", "550 5.1.1 <ana@example.org>: Recipient address rejected: User unknown", "permanent"),
    ("5.1", "DATA", "550 5.1.1 mailbox unavailable", "permanent"),  # a server that judges recipients after DATA
    ("5.1.7", "RCPT", "553 5.1.7 The sender address is not valid", "rejected"),
    ("5.1.8", "RCPT", "550 5.1.8 Sender address rejected: Domain not found", "rejected"),
    ("5.2.1", "RCPT", "550 5.2.1 The email account that you tried to reach is disabled", "permanent"),
    ("5.2", "DATA", "552 5.2.2 The email account that you tried to reach is over quota", "rejected"),
    ("5.3", "DATA", "552 5.3.4 Message too big for system", "rejected"),
    ("5.4", "RCPT", "550 5.4.1 Recipient address rejected: Access denied", "rejected"),
    ("5.5", "DATA", "500 5.5.2 Line too long", "rejected"),
    ("5.6", "DATA", "554 5.6.0 Message content rejected", "rejected"),
    ("5.7", "DATA", "550 5.7.1 Message rejected by policy", "rejected"),
    ("5.7", "RCPT", "554 5.7.1 <ana@example.org>: Relay access denied", "rejected"),
    ("line too long", "DATA", "500 Line too long", "rejected"),
    ("too big", "DATA", "554 Message too big", "rejected"),
    ("too large", "RCPT", "550 Message too large for this mailbox", "rejected"),  # words before the basic code
    ("size", "DATA", "552 Message size exceeds fixed maximum message size", "rejected"),
    ("550 at RCPT", "RCPT", "550 Requested action not taken: mailbox unavailable", "permanent"),
    ("551 at RCPT", "RCPT", "551 User not local; please try <ana@example.net>", "permanent"),
    ("553 at RCPT", "RCPT", "553 Requested action not taken: mailbox name not allowed", "permanent"),
    ("no row", "DATA", "550 Requested action not taken: mailbox unavailable", "rejected"),
    ("no row", "RCPT", "554 Transaction failed", "rejected"),
]


def test_every_row_of_the_table_is_shown_by_a_reply():
    assert {row for row, *_ in REPLIES} - {"no row"} == set(PERMANENT)


@pytest.mark.parametrize(("row", "stage", "reply", "status"), REPLIES, ids=[f"{r[1]} {r[2][:24]}" for r in REPLIES])
def test_a_final_refusal_is_a_bounce_only_when_it_is_about_the_mailbox(sink, sender, row, stage, reply, status):
    sink.handler.refusals[TO] = (stage, reply)
    outcome = sender.send(FROM, TO, MESSAGE)
    assert (outcome.status, outcome.code) == (status, int(reply[:3]))
    assert outcome.detail.startswith(f"{stage} {reply[:3]}") and TO not in outcome.detail
    # The refused transaction is ended and the connection carries the next message.
    assert sender.send(FROM, "ion@example.org", MESSAGE).status == "sent"
    assert (sink.handler.connections, sink.handler.accepted) == (1, 1)


def build(renderer: Renderer, email: str) -> bytes:
    compiled = renderer.compile(load_item(FIXTURES / "newsletter"), "ro", "newsletter")
    skeleton = Skeleton.prepare(compiled, renderer.settings, feedback_id="campaign-1:newsletter:ro")
    return skeleton.build(Recipient(email=email, name="Ion Popescu"), message_id="<c1.d1@herald.localhost>",
                          sent_at=datetime(2027, 1, 2, tzinfo=UTC))


def test_an_idn_domain_goes_out_as_its_a_label(renderer, sink, sender):
    """email_validator keeps `ion@bucurești.example.org`; RCPT TO and the To header carry the A-label."""
    message = build(renderer, "ion@bucurești.example.org")
    assert sender.send(FROM, "ion@bucurești.example.org", message).status == "sent"
    [envelope] = sink.handler.envelopes
    assert envelope.rcpt_tos == ["ion@xn--bucureti-m9c.example.org"] and "SMTPUTF8" not in envelope.mail_options
    [stored] = sink.handler.outbox.glob("*.eml")
    assert stored.read_bytes() == message and message.isascii()
    assert parse_eml(message)["To"].addresses[0].addr_spec == "ion@xn--bucureti-m9c.example.org"


def test_a_unicode_local_part_goes_with_smtputf8_to_a_server_that_offers_it(renderer, sink, sender):
    message = build(renderer, "ștefan@bucurești.example.org")
    assert sender.send(FROM, "ștefan@bucurești.example.org", message).status == "sent"
    [envelope] = sink.handler.envelopes
    assert envelope.rcpt_tos == ["ștefan@xn--bucureti-m9c.example.org"] and "SMTPUTF8" in envelope.mail_options
    [stored] = sink.handler.outbox.glob("*.eml")
    assert stored.read_bytes() == message
    assert addr_spec(parse_eml(message)) == "ștefan@xn--bucureti-m9c.example.org"


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_unicode_local_part_is_rejected_not_bounced_by_a_server_without_smtputf8(renderer, tmp_path, pipelining):
    message = build(renderer, "ștefan@exemplu.ro")
    with ScriptedSink(tmp_path / "outbox", pipelining=pipelining, smtputf8=False) as sink, \
            SmtpSender(parse_smtp_url(sink.url), timeout=10) as sender:
        outcome = sender.send(FROM, "ștefan@exemplu.ro", message)
        assert outcome.status == "rejected" and "SMTPUTF8" in outcome.detail and "ștefan" not in outcome.detail
        assert sender.send(FROM, TO, MESSAGE).status == "sent"
        assert (sink.handler.connections, sink.handler.accepted) == (1, 1)


@pytest.fixture
def fresh_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smtp, "_smtputf8_answers", {})


def test_whether_the_server_offers_smtputf8_is_asked_once_and_remembered(tmp_path, fresh_answers, monkeypatch):
    with ScriptedSink(tmp_path / "with") as offering, ScriptedSink(tmp_path / "without", smtputf8=False) as not_offering:
        assert [offers_smtputf8(offering.url) for _ in range(3)] == [True] * 3
        assert [offers_smtputf8(not_offering.url) for _ in range(3)] == [False] * 3
        assert offering.handler.connections == not_offering.handler.connections == 1
        monkeypatch.setattr(smtp, "SMTPUTF8_ANSWER_SECONDS", 0)
        assert offers_smtputf8(offering.url) and offering.handler.connections == 2


def test_a_server_that_cannot_be_reached_does_not_offer_smtputf8(fresh_answers):
    assert not offers_smtputf8(f"smtp://127.0.0.1:{free_port()}?security=none", timeout=2)
    assert not offers_smtputf8("mail.example.org:587")
