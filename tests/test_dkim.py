"""DKIM: every message Herald renders or sends verifies with dkimpy and with OpenDKIM's `opendkim-testmsg`, against
the TXT records `herald dkim keygen` printed, served by a real DNS server on loopback; a changed signed header or a
changed body byte fails both; a real campaign through a worker arrives signed.

OpenDKIM asks the system's resolver (glibc, /etc/resolv.conf, port 53 only) and opendkim-testmsg has no option
to name another: each run gets a mount namespace of its own (`unshare --mount`) in which a resolv.conf naming
the test's DNS server is bind-mounted over /etc/resolv.conf, and that server listens on port 53 of a loopback
address of its own (127.x.y.z). Both need root, as CI has (.ci/run installs opendkim-tools).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import dkim as dkimpy
import dns.resolver
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dns_server import DnsServer, free_loopback_53
from engine import NEWSLETTER, Engine, running_engine, seed
from needs import unavailable
from processes import herald, own_env
from smtp_faults import ScriptedSink
from sqlalchemy import select
from typer.testing import CliRunner

from foundation.settings import PROJECT_ROOT, DkimKeyFile, load_settings
from tests.conftest import parse_eml
from worker.campaigns.models import Campaign
from worker.cli import app
from worker.delivery.dkim import signer_for
from worker.delivery.dkim_keys import TXT_STRING, load_key
from worker.delivery.mime import Skeleton, message_id
from worker.rendering.render import CONFIRMATION, EDITIONS, Renderer, sample_recipient

DOMAIN = "herald.localhost"  # HERALD_ORG_EMAIL's domain by default
KEYS = {"rsa": "herald2026a", "ed25519": "herald2026e"}  # algorithm -> selector
EVENT = "content/events/eui-online-qa-session"
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # signing touches no table


@dataclass(frozen=True)
class Published:
    keys: str  # HERALD_DKIM_KEYS
    paths: dict[str, Path]  # algorithm -> key file
    zone: dict[str, list]  # what the DNS server serves: keygen's printed records, as printed


def keygen(algorithm: str, selector: str, out: Path) -> str:
    result = CliRunner().invoke(app, ["dkim", "keygen", "--domain", DOMAIN, "--selector", selector,
                                      "--algorithm", algorithm, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return result.output


def zone_record(printed: str) -> tuple[str, list[str]]:
    """The one zone-file line keygen prints, read as a DNS server reads it: the name and the quoted strings."""
    line = next(line for line in printed.splitlines() if " IN TXT " in line)
    name, strings = re.fullmatch(r"(\S+)\. IN TXT \( (.+) \)", line).groups()
    return name, re.findall(r'"([^"]*)"', strings)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder = tmp_path_factory.mktemp("dkim")
    paths = {algorithm: folder / f"{selector}.pem" for algorithm, selector in KEYS.items()}
    zone = dict(zone_record(keygen(algorithm, KEYS[algorithm], path)) for algorithm, path in paths.items())
    keys = ",".join(f"{DOMAIN}:{KEYS[algorithm]}:{path}" for algorithm, path in paths.items())
    return Published(keys, paths, {name: [("TXT", strings)] for name, strings in zone.items()})


@pytest.fixture(scope="module")
def dns53(published: Published, tmp_path_factory: pytest.TempPathFactory):
    """The records on port 53 of a loopback address, and a resolv.conf naming it, for opendkim-testmsg."""
    for tool in ("opendkim-testmsg", "unshare"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (Debian: apt-get install opendkim-tools util-linux)")
    if os.geteuid() != 0:
        unavailable("opendkim-testmsg reads its DNS from /etc/resolv.conf: pointing it at the test's server needs root")
    with DnsServer(published.zone, host=free_loopback_53(), port=53) as server:
        server.resolv_conf = tmp_path_factory.mktemp("resolv") / "resolv.conf"
        server.resolv_conf.write_text(f"nameserver {server.host}\noptions timeout:2 attempts:2\n")
        yield server


def dkimpy_results(message: bytes, server: DnsServer) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature, its key looked up in the test's DNS server."""
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = [server.host], server.port

    def txt(name: bytes, timeout: float = 5) -> bytes:
        try:
            return b"".join(resolver.resolve(name.decode(), "TXT")[0].strings)
        except dns.resolver.NXDOMAIN:
            return b""

    verifier = dkimpy.DKIM(message)
    count = sum(name.lower() == b"dkim-signature" for name, _ in verifier.headers)
    results = []
    for index in range(count):
        try:
            results.append(verifier.verify(idx=index, dnsfunc=txt))
        except dkimpy.DKIMException:  # what dkim.verify() reads as False: a body hash that differs, among others
            results.append(False)
    return results


def opendkim(message: bytes, server: DnsServer) -> subprocess.CompletedProcess[bytes]:
    """opendkim-testmsg's verdict (exit code 0: verified), in a namespace whose /etc/resolv.conf names `server`."""
    return subprocess.run(["unshare", "--mount", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec opendkim-testmsg',
                           str(server.resolv_conf)], input=message, capture_output=True, timeout=30, check=False)


def only(message: bytes, algorithm: str) -> bytes:
    """`message` keeping only its DKIM-Signature with a=`algorithm` (opendkim-testmsg reports one verdict)."""
    head, _, body = message.partition(b"\r\n\r\n")
    fields = re.split(rb"\r\n(?![ \t])", head)
    kept = [field for field in fields
            if not field.lower().startswith(b"dkim-signature:") or f"a={algorithm}-sha256;".encode() in field]
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


def assert_verifies(message: bytes, server: DnsServer, what: str) -> None:
    """Both signatures verify with dkimpy, and each with OpenDKIM; the signature's lines keep the 78-character rule."""
    assert dkimpy_results(message, server) == [True, True], what
    for algorithm in KEYS:
        verdict = opendkim(only(message, algorithm), server)
        assert verdict.returncode == 0, f"{what} ({algorithm}): {verdict.stderr.decode()}"
    head = message.partition(b"\r\n\r\n")[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n") if not line.startswith(b"List-Unsubscribe: <"))


def assert_fails(message: bytes, server: DnsServer, what: str, opendkim_says: bytes = b"Bad signature") -> None:
    assert dkimpy_results(message, server) == [False, False], what
    for algorithm in KEYS:
        verdict = opendkim(only(message, algorithm), server)
        assert verdict.returncode != 0 and opendkim_says in verdict.stderr, f"{what} ({algorithm}): {verdict}"


# ---- every message kind ----------------------------------------------------------------------------

def test_every_message_herald_renders_verifies_with_dkimpy_and_opendkim(published, dns53, tmp_path):
    """`herald render` of every shipped item (every newsletter and event message, every edition), and the
    confirmation request as the engine builds it, which no item renders."""
    result = CliRunner().invoke(app, ["render", str(PROJECT_ROOT / "content"), "--out", str(tmp_path)],
                                env={"HERALD_DKIM_KEYS": published.keys})
    assert result.exit_code == 0, result.output
    rendered = sorted(tmp_path.glob("*/*.eml"))
    messages = {re.sub(r"\..*", "", path.name) for path in rendered}
    assert messages == {"newsletter", "invitation", "update", "reminder", "cancellation", "followup", "waitlist"}
    for path in rendered:
        assert_verifies(path.read_bytes(), dns53, str(path.relative_to(tmp_path)))

    settings = replace(load_settings(), dkim_keys=tuple(DkimKeyFile(DOMAIN, KEYS[algorithm], path)
                                                        for algorithm, path in published.paths.items()))
    renderer, signer = Renderer(settings), signer_for(settings)
    for edition in EDITIONS:
        skeleton = Skeleton.prepare(renderer.compile_confirmation(edition, date.today()), settings,
                                    feedback_id=f"campaign-1:confirmation:{edition}")
        confirmation = signer.sign(skeleton.build(sample_recipient(settings), message_id=message_id(DOMAIN),
                                                  sent_at=datetime.now(UTC)))
        assert_verifies(confirmation, dns53, f"confirmation.{edition}")


def test_a_changed_signed_header_or_body_byte_fails_both_verifiers(published, dns53, tmp_path):
    result = CliRunner().invoke(app, ["render", str(PROJECT_ROOT / NEWSLETTER), "--edition", "both", "--out",
                                      str(tmp_path)], env={"HERALD_DKIM_KEYS": published.keys})
    assert result.exit_code == 0, result.output
    message = next(tmp_path.glob("*/newsletter.both.eml")).read_bytes()
    assert_verifies(message, dns53, "as rendered")
    # What relays do on the way (a Received line on top) is not what the signature covers.
    assert_verifies(b"Received: from herald.localhost by mx.example.org;\r\n Mon, 18 Jan 2027 09:00:01 +0000\r\n"
                    + message, dns53, "with a Received line")

    head, _, body = message.partition(b"\r\n\r\n")
    middle = len(body) // 2 + re.search(rb"[a-z]", body[len(body) // 2:]).start()
    changed = {
        "Subject": message.replace(b"\r\nSubject: ", b"\r\nSubject: Re: ", 1),
        "List-Unsubscribe": re.sub(rb"(List-Unsubscribe:\s*<[^>]+)>", rb"\1x>", head, count=1) + b"\r\n\r\n" + body,
        "List-Unsubscribe-Post": message.replace(b"List-Unsubscribe=One-Click", b"List-Unsubscribe=one-click", 1),
        "a second From, added on top": b"From: Director <director@herald.localhost>\r\n" + message,  # over-signed
        "one byte of the body": head + b"\r\n\r\n" + body[:middle] + body[middle:middle + 1].upper() + body[middle + 1:],
    }
    # A header the message lacks is signed as absent: none can be added. A confirmation request has no List-Unsubscribe.
    settings = replace(load_settings(), dkim_keys=tuple(DkimKeyFile(DOMAIN, KEYS[algorithm], path)
                                                        for algorithm, path in published.paths.items()))
    bare = signer_for(settings).sign(b"From: Herald <urbact@herald.localhost>\r\nTo: <a@example.org>\r\n"
                                     b"Date: Mon, 18 Jan 2027 09:00:00 +0000\r\nSubject: Confirm\r\n\r\nhello\r\n")
    assert_verifies(bare, dns53, "a message without List-Unsubscribe")
    changed["List-Unsubscribe, added"] = bare.replace(b"Subject: Confirm", b"List-Unsubscribe: <https://x.example>\r\n"
                                                                          b"Subject: Confirm")
    # From is listed twice (over-signed); each verifier also refuses a second From by itself.
    signed_headers = re.search(rb"h=([^;]+);", re.sub(rb"\r\n[ \t]", b"", message)).group(1).replace(b" ", b"")
    assert signed_headers == (b"from:from:to:subject:date:message-id:mime-version:content-type:list-id:"
                              b"list-unsubscribe:list-unsubscribe-post:feedback-id")
    for what, altered in changed.items():
        assert altered != message, what
        # OpenDKIM refuses a second From before it looks at a signature; dkimpy fails it by the over-signed From.
        assert_fails(altered, dns53, what, b"Syntax error" if what.startswith("a second From") else b"Bad signature")


@SQLITE_ONLY
def test_a_test_copy_arrives_signed(published, dns53, db_settings, tmp_path):
    with ScriptedSink(tmp_path / "sink") as sink:
        result = CliRunner().invoke(app, ["send", str(PROJECT_ROOT / EVENT), "--message", "invitation", "--test-to",
                                          "colleague@example.org"],
                                    env={"HERALD_DKIM_KEYS": published.keys, "HERALD_SMTP_URL": sink.url})
        assert result.exit_code == 0, result.output
    [copy] = (tmp_path / "sink").glob("*.eml")
    assert parse_eml(copy.read_bytes())["Subject"].startswith("[TEST] ")
    assert_verifies(copy.read_bytes(), dns53, "test copy")


@SQLITE_ONLY
def test_every_message_of_a_campaign_through_the_worker_verifies(published, dns53, db_settings, redis_server, tmp_path):
    """A newsletter and an invitation (its calendar per recipient) to everyone, and beat's confirmation request
    to the people who have not confirmed: the sink's every message verifies with both verifiers."""
    with running_engine(db_settings, redis_server.url, tmp_path, HERALD_DKIM_KEYS=published.keys) as engine:
        seed(engine.settings, 12)
        seed(engine.settings, 6, seed_value=99, consent=False)
        engine.start_worker()
        engine.start_beat()
        sent = [engine.send(NEWSLETTER, "--segment", "all-subscribers"),
                engine.send(EVENT, "--message", "invitation", "--segment", "all-subscribers")]
        engine.wait_for("the confirmation campaign", lambda: confirmation(engine) is not None)
        for campaign_id in [*sent, confirmation(engine)]:
            engine.wait_state(campaign_id, "sent")
        messages = sorted(engine.settings.outbox_dir.glob("*.eml"))
        asked = engine.counts(confirmation(engine))["sent"]
        assert len(messages) == 2 * len(engine.mailable()) + asked and asked == 6
    for path in messages:
        assert_verifies(path.read_bytes(), dns53, path.name)


def confirmation(engine: Engine) -> int | None:
    """The id of the confirmation campaign beat's sweep started, if it has."""
    with engine.sessions() as session:
        return session.scalar(select(Campaign.id).where(Campaign.message == CONFIRMATION))


# ---- keys: made, chosen, refused -------------------------------------------------------------------

def test_keygen_writes_the_key_for_its_owner_only_and_prints_the_record_in_255_octet_strings(published, tmp_path):
    for algorithm, path in published.paths.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = load_key(DkimKeyFile(DOMAIN, KEYS[algorithm], path))
        assert key.algorithm == f"{algorithm}-sha256"
        [(_, strings)] = published.zone[key.record_name]
        assert all(len(part.encode()) <= TXT_STRING for part in strings)
        assert "".join(strings) == key.record() and key.record().startswith(f"v=DKIM1; k={algorithm}; p=")
    rsa = load_key(DkimKeyFile(DOMAIN, KEYS["rsa"], published.paths["rsa"]))
    assert rsa.private.key_size == 2048 and len(published.zone[rsa.record_name][0][1]) == 2  # 410 octets: two strings

    before = published.paths["rsa"].read_bytes()
    again = CliRunner().invoke(app, ["dkim", "keygen", "--domain", DOMAIN, "--selector", KEYS["rsa"],
                                     "--out", str(published.paths["rsa"])])
    assert again.exit_code == 2 and "exists already" in again.output
    assert published.paths["rsa"].read_bytes() == before


def test_the_newest_key_of_each_algorithm_signs_and_a_retired_one_does_not(published, tmp_path):
    old = tmp_path / "old.pem"
    keygen("rsa", "herald2025a", old)
    settings = replace(load_settings(), dkim_keys=(
        DkimKeyFile(DOMAIN, KEYS["rsa"], published.paths["rsa"]), DkimKeyFile(DOMAIN, "herald2025a", old),
        DkimKeyFile(DOMAIN, KEYS["ed25519"], published.paths["ed25519"])))
    message = signer_for(settings).sign(b"From: Herald <news@herald.localhost>\r\nSubject: x\r\n\r\nhello\r\n")
    selectors = re.findall(rb"DKIM-Signature: v=1; a=([a-z0-9-]+);.*?s=([a-z0-9]+);", message, re.S)
    assert selectors == [(b"rsa-sha256", KEYS["rsa"].encode()), (b"ed25519-sha256", KEYS["ed25519"].encode())]
    # A From domain no key is for stays unsigned (herald doctor says so).
    assert signer_for(settings).sign(b"From: <a@example.org>\r\n\r\nhello\r\n") == b"From: <a@example.org>\r\n\r\nhello\r\n"


@pytest.mark.parametrize("command", [["render", NEWSLETTER], ["send", "--test-to", "someone@example.org", NEWSLETTER],
                                     ["worker"]], ids=lambda command: command[0])
def test_a_key_herald_cannot_sign_with_stops_the_command_in_one_line(tmp_path, command):
    weak = tmp_path / "weak.pem"
    weak.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    env = own_env(tmp_path, HERALD_DKIM_KEYS=f"{DOMAIN}:old:{weak}")
    result = herald(env, *command, timeout=60)
    said = result.stderr.strip()
    assert result.returncode != 0 and "\n" not in said and "Traceback" not in said, result.stderr
    assert said == (f"HERALD_DKIM_KEYS: {weak} is a 1024-bit RSA key, and receivers want 2048 bits (RFC 8301); make "
                    f"one with `herald dkim keygen --domain {DOMAIN} --selector old` and publish its record")


def test_a_dkim_keys_entry_that_cannot_be_read_is_refused_with_the_format(monkeypatch):
    monkeypatch.setenv("HERALD_DKIM_KEYS", "herald.localhost:2026a")
    with pytest.raises(SystemExit, match=r"HERALD_DKIM_KEYS has 'herald.localhost:2026a', which is not "
                                         r"domain:selector:path .* write each key as domain:selector:/path"):
        load_settings()
