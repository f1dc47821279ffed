"""The sending edge against a real SMTP server (the sink, scripted to refuse): every reply sorted right."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import free_port
from smtp_faults import ScriptedSink

from worker.smtp import Outcome, SmtpSender, SmtpTarget, dot_stuffed, parse_smtp_url

FROM = "urbact@herald.localhost"
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


def test_a_non_ascii_address_goes_through_a_server_that_speaks_smtputf8(sink, sender):
    assert sender.send(FROM, "ană@exemplu.ro", MESSAGE).status == "sent"


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
