"""`herald doctor`: each check with a good and a broken configuration, against real servers: the zones a real DNS
server on loopback serves (dnslib), an SMTP sink with and without STARTTLS and a login (aiosmtpd, with a
certificate of the test's own authority, trusted through SSL_CERT_FILE), the real web app over https or nothing at
all; then the command itself: exit code 0 when all is well, 1 on any error, and "could not check" without DNS.
"""

from __future__ import annotations

import shutil
import socket
import ssl
from dataclasses import replace
from pathlib import Path

import dns.reversename
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from certificates import Certificates, make_certificates
from dns_server import DnsServer
from live_server import live_server
from needs import unavailable
from smtp_faults import ScriptedSink
from typer.testing import CliRunner

from foundation.settings import PROJECT_ROOT, DkimKeyFile, Settings
from worker.cli import app
from worker.commands import doctor, doctor_dns
from worker.commands.doctor_relay import relay
from worker.commands.findings import Finding
from worker.delivery.dkim_keys import SigningKey, load_key, new_private_key, txt_strings, write_key

DOMAIN = "herald.example.org"  # the From domain; its organisational domain, example.org, holds the DMARC record
SELECTOR, RETIRED = "herald2026b", "herald2026a"
LOGIN = ("news@example.org", "s3cret pass")
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the web app needs a store


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def trusted(certificates: Certificates, monkeypatch: pytest.MonkeyPatch) -> Certificates:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    return certificates


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SigningKey]:
    """The key that signs, a retired one, and an Ed25519 one, as `herald dkim keygen` writes them."""
    folder = tmp_path_factory.mktemp("dkim")
    made = {}
    for selector, key_type in ((SELECTOR, "rsa"), (RETIRED, "rsa"), ("herald2026e", "ed25519")):
        write_key(new_private_key(key_type), folder / f"{selector}.pem")
        made[selector] = load_key(DkimKeyFile(DOMAIN, selector, folder / f"{selector}.pem"))
    return made


@pytest.fixture(scope="module")
def outgoing() -> doctor_dns.IPAddress:
    address = doctor_dns.outgoing_address()
    if address is None:
        unavailable("this machine has no route out, so it has no address to send from")
    return address


def good_zone(keys: dict[str, SigningKey], outgoing: doctor_dns.IPAddress) -> dict[str, list]:
    reverse = dns.reversename.from_address(str(outgoing)).to_text(omit_final_dot=True)
    return {
        DOMAIN: [("TXT", "v=spf1 include:_spf.example.org ~all"), ("TXT", "google-site-verification=abc"),
                 ("MX", "mx.example.org")],
        "_spf.example.org": [("TXT", f"v=spf1 ip4:198.51.100.0/24 ip{outgoing.version}:{outgoing} -all")],
        "_dmarc.example.org": [("TXT", "v=DMARC1; p=quarantine; rua=mailto:dmarc@example.org")],
        **{key.record_name: [("TXT", txt_strings(key.record()))] for key in keys.values()},
        reverse: [("PTR", f"mail.{DOMAIN}")],
        f"mail.{DOMAIN}": [("A" if outgoing.version == 4 else "AAAA", str(outgoing))],
        "relay.example.net": [("A", "198.51.100.25")],
    }


@pytest.fixture(scope="module")
def dns_server(keys, outgoing):
    with DnsServer(good_zone(keys, outgoing)) as server:
        yield server


@pytest.fixture
def zone(dns_server: DnsServer, keys, outgoing) -> dict[str, list]:
    """The good zone, served afresh for each test; a test changes it and serves it again with `served`."""
    records = good_zone(keys, outgoing)
    dns_server.zone.serve(records)
    return records


def served(server: DnsServer, records: dict[str, list]) -> doctor_dns.Dns:
    server.zone.serve(records)
    return doctor_dns.dns_for(server.address)


@pytest.fixture
def configured(settings: Settings, keys) -> Settings:
    """From news@herald.example.org, signed by herald2026b (herald2026a retired), through a relay on this machine."""
    return replace(settings, org_email=f"news@{DOMAIN}", smtp_url="smtp://127.0.0.1:25?security=none",
                   dkim_keys=tuple(DkimKeyFile(DOMAIN, key.selector, key.path) for key in
                                   (keys[SELECTOR], keys[RETIRED], keys["herald2026e"])))


def one(findings: list[Finding], check: str) -> Finding:
    [finding] = [finding for finding in findings if finding.check == check]
    return finding


def statuses(findings: list[Finding]) -> dict[str, str]:
    return {finding.check: finding.status for finding in findings}


# ---- the web side and the secrets --------------------------------------------------------------------

@SQLITE_ONLY
def test_base_url_is_https_and_answers(db_settings, trusted, tmp_path):
    with live_server(db_settings, tls=(trusted.cert, trusted.key)) as web:
        [good] = doctor.base_url(web.settings)
    assert (good.status, good.found) == ("ok", f"{web.url} answers: Herald's web side is there (200)")

    closed = f"http://127.0.0.1:{closed_port()}"
    broken = doctor.base_url(replace(db_settings, base_url=closed))
    assert [finding.status for finding in broken] == ["error", "error"]
    assert broken[0].found.startswith(f"{closed} is not https") and "RFC 8058" in broken[0].found
    assert broken[1].found.startswith(f"{closed} does not answer (") and "herald web" in broken[1].fix


def test_the_secret_key_and_the_api_token_are_set(settings):
    good = doctor.secrets(replace(settings, secret_key_from_env=True, secret_key="k" * 43, api_token="t" * 43))
    assert statuses(good) == {"HERALD_SECRET_KEY": "ok", "HERALD_API_TOKEN": "ok"}

    broken = doctor.secrets(replace(settings, secret_key_from_env=False, api_token=""))
    assert statuses(broken) == {"HERALD_SECRET_KEY": "error", "HERALD_API_TOKEN": "error"}
    assert "token_urlsafe(32)" in one(broken, "HERALD_API_TOKEN").fix
    short = doctor.secrets(replace(settings, secret_key_from_env=True, secret_key="short", api_token="short"))
    assert statuses(short) == {"HERALD_SECRET_KEY": "warning", "HERALD_API_TOKEN": "warning"}


# ---- the SMTP relay ------------------------------------------------------------------------------------

def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _login(server, session, envelope, mechanism: str, data: LoginPassword) -> AuthResult:
    """aiosmtpd answers 235 or 535 itself (handled=False)."""
    return AuthResult(success=(data.login.decode(), data.password.decode()) == LOGIN, handled=False)


@pytest.fixture
def secured_sink(trusted: Certificates, tmp_path: Path):
    """A relay as providers run them: STARTTLS first, then a login, on a certificate the test trusts."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(trusted.cert, trusted.key)
    with ScriptedSink(tmp_path / "secured", tls_context=context, require_starttls=True, authenticator=_login,
                      auth_required=True) as sink:
        yield sink


def relay_url(port: int, security: str, login: tuple[str, str] | None = LOGIN) -> str:
    user = f"{login[0].replace('@', '%40')}:{login[1].replace(' ', '%20')}@" if login else ""
    return f"smtp://{user}127.0.0.1:{port}?security={security}"


def test_a_relay_with_starttls_and_login_passes(settings, secured_sink):
    findings = relay(replace(settings, smtp_url=relay_url(secured_sink.port, "starttls")))
    assert statuses(findings) == {"SMTP relay": "ok", "SMTP TLS": "ok", "SMTP login": "ok", "SMTP PIPELINING": "ok",
                                  "SMTP SMTPUTF8": "ok"}
    assert one(findings, "SMTP TLS").found.startswith("STARTTLS (TLSv1.")
    assert one(findings, "SMTP login").found == f"logged in as {LOGIN[0]}"


def test_a_relay_refusing_the_login_is_an_error(settings, secured_sink):
    findings = relay(replace(settings, smtp_url=relay_url(secured_sink.port, "starttls", (LOGIN[0], "wrong"))))
    login = one(findings, "SMTP login")
    assert login.status == "error" and login.found.startswith(f"the relay refuses the login of {LOGIN[0]}: 535")


def test_a_relay_without_starttls_or_not_answering_is_an_error(settings, tmp_path):
    with ScriptedSink(tmp_path / "plain", pipelining=False, smtputf8=False) as plain:
        findings = relay(replace(settings, smtp_url=relay_url(plain.port, "starttls")))
        assert statuses(findings) == {"SMTP relay": "ok", "SMTP TLS": "error"}  # and no login in clear
        assert one(findings, "SMTP TLS").found == "the relay does not offer STARTTLS, which security=starttls asks for"

        local = relay(replace(settings, smtp_url=relay_url(plain.port, "none", None)))  # the relay on this machine
        assert statuses(local) == {"SMTP relay": "ok", "SMTP TLS": "ok", "SMTP login": "ok", "SMTP PIPELINING": "ok",
                                   "SMTP SMTPUTF8": "warning"}
        assert one(local, "SMTP PIPELINING").found.startswith("does not offer PIPELINING")
    [down] = relay(replace(settings, smtp_url=relay_url(closed_port(), "starttls")))
    assert down.status == "error" and "does not answer" in down.found and "port 587" in down.fix


# ---- DNS -------------------------------------------------------------------------------------------------

def test_spf_must_let_the_relay_send_for_the_from_domain(configured, dns_server, zone, outgoing):
    [good] = doctor_dns.spf(configured, served(dns_server, zone))
    assert (good.status, good.found) == ("ok", f"{DOMAIN}'s SPF record lets {outgoing} send as it")

    [missing] = doctor_dns.spf(configured, served(dns_server, {**zone, DOMAIN: zone[DOMAIN][1:]}))
    assert missing.status == "error" and missing.found.startswith(f"{DOMAIN} has no SPF record")
    assert missing.fix == f'publish a TXT record at {DOMAIN}: "v=spf1 ip{outgoing.version}:{outgoing} ~all"'

    elsewhere = {**zone, "_spf.example.org": [("TXT", "v=spf1 ip4:198.51.100.0/24 -all")]}
    [refused] = doctor_dns.spf(configured, served(dns_server, elsewhere))
    assert refused.status == "error" and f"{outgoing} (softfail)" in refused.found  # the include fails: ~all

    twice = {**zone, DOMAIN: [*zone[DOMAIN], ("TXT", "v=spf1 -all")]}
    [broken] = doctor_dns.spf(configured, served(dns_server, twice))
    assert broken.status == "error" and "has 2 SPF records" in broken.found

    # A provider's relay on another machine (198.51.100.25): its own address missing from SPF may be fine, as
    # providers often send from other addresses than the one that takes the mail, so only a warning.
    remote = replace(configured, smtp_url="smtp://relay.example.net:587")
    [listed] = doctor_dns.spf(remote, served(dns_server, zone))
    assert listed.status == "ok"
    only_here = {**zone, "_spf.example.org": [("TXT", f"v=spf1 ip{outgoing.version}:{outgoing} -all")]}
    [provider] = doctor_dns.spf(remote, served(dns_server, only_here))
    assert provider.status == "warning" and "198.51.100.25 (softfail)" in provider.found and "include:" in provider.fix


def test_each_dkim_record_must_match_its_key(configured, dns_server, zone, keys):
    good = doctor_dns.dkim(configured, served(dns_server, zone))
    assert statuses(good) == {f"DKIM {keys[selector].record_name}": "ok" for selector in keys}
    assert "which signs" in one(good, f"DKIM {keys[SELECTOR].record_name}").found
    assert "retired" in one(good, f"DKIM {keys[RETIRED].record_name}").found

    signing, retired = keys[SELECTOR].record_name, keys[RETIRED].record_name
    gone = {name: records for name, records in zone.items() if name not in (signing, retired)}
    missing = doctor_dns.dkim(configured, served(dns_server, gone))
    assert one(missing, f"DKIM {signing}").status == "error"
    assert one(missing, f"DKIM {signing}").fix.startswith(f"publish this TXT record: {signing}. IN TXT ( \"v=DKIM1;")
    assert one(missing, f"DKIM {retired}").status == "warning"

    swapped = {**zone, signing: zone[retired]}
    other = one(doctor_dns.dkim(configured, served(dns_server, swapped)), f"DKIM {signing}")
    assert other.status == "error" and other.found.startswith("the record holds another key")

    [unsigned] = doctor_dns.dkim(replace(configured, dkim_keys=()), served(dns_server, zone))
    assert unsigned.status == "error" and unsigned.found.startswith("nothing is signed")
    elsewhere = replace(configured, org_email="news@example.com")
    assert one(doctor_dns.dkim(elsewhere, served(dns_server, zone)), "DKIM").found.startswith(
        f"no key signs for example.com, the From domain (HERALD_DKIM_KEYS has {DOMAIN})")
    unreadable = replace(configured, dkim_keys=(DkimKeyFile(DOMAIN, "lost", Path("/nonexistent/lost.pem")),))
    lost = one(doctor_dns.dkim(unreadable, served(dns_server, zone)), f"DKIM lost._domainkey.{DOMAIN}")
    assert lost.status == "error" and "cannot read /nonexistent/lost.pem" in lost.found


def test_dmarc_must_have_a_policy(configured, dns_server, zone):
    [good] = doctor_dns.dmarc(configured, served(dns_server, zone))
    assert (good.status, good.found) == ("ok", "_dmarc.example.org: p=quarantine (unaligned mail goes to spam)")

    [missing] = doctor_dns.dmarc(configured, served(dns_server, {**zone, "_dmarc.example.org": []}))
    assert missing.status == "error" and missing.fix == (f'publish a TXT record at _dmarc.{DOMAIN}: '
                                                         f'"v=DMARC1; p=none; rua=mailto:dmarc@{DOMAIN}"')
    no_policy = {**zone, "_dmarc.example.org": [("TXT", "v=DMARC1; rua=mailto:dmarc@example.org")]}
    [broken] = doctor_dns.dmarc(configured, served(dns_server, no_policy))
    assert broken.status == "error" and "p=missing" in broken.found


def test_the_bounce_domain_must_have_an_mx(configured, dns_server, zone):
    [good] = doctor_dns.mx(configured, served(dns_server, zone))
    assert (good.status, good.found) == ("ok", f"bounces to news@{DOMAIN} go to mx.example.org")

    [missing] = doctor_dns.mx(configured, served(dns_server, {**zone, DOMAIN: zone[DOMAIN][:2]}))
    assert missing.status == "error" and missing.found.startswith(f"{DOMAIN} has no MX record")
    [null] = doctor_dns.mx(configured, served(dns_server, {**zone, DOMAIN: [*zone[DOMAIN][:2], ("MX", ".")]}))
    assert null.status == "error" and "null MX" in null.found


def test_this_machine_as_the_relay_needs_reverse_dns_that_leads_back(configured, dns_server, zone, outgoing):
    [good] = doctor_dns.reverse_dns(configured, served(dns_server, zone))
    assert (good.status, good.found) == ("ok", f"{outgoing} is mail.{DOMAIN}, and mail.{DOMAIN} is {outgoing}")

    reverse = dns.reversename.from_address(str(outgoing)).to_text(omit_final_dot=True)
    [missing] = doctor_dns.reverse_dns(configured, served(dns_server, {**zone, reverse: []}))
    assert missing.status == "error" and f"{outgoing} has no reverse DNS (PTR)" in missing.found
    [astray] = doctor_dns.reverse_dns(configured, served(dns_server, {**zone, f"mail.{DOMAIN}": [("A", "203.0.113.9")]}))
    assert astray.status == "error" and "does not lead back" in astray.found

    [other] = doctor_dns.reverse_dns(replace(configured, smtp_url="smtp://relay.example.net:587"),
                                     served(dns_server, zone))
    assert other.status == "ok" and "another machine" in other.found


def test_without_an_answering_dns_every_dns_check_could_not_check(configured):
    silent = doctor_dns.dns_for(f"127.0.0.1:{closed_port()}", timeout=1)
    findings = doctor_dns.all_checks(configured, silent)
    assert {finding.status for finding in findings} == {"unchecked"}, findings
    assert {finding.check for finding in findings} >= {"SPF", "DMARC", "MX", "reverse DNS"}


# ---- the sample message -------------------------------------------------------------------------------

def test_a_sample_of_the_first_newsletter_is_signed_verified_and_not_clipped(configured, tmp_path):
    good = doctor.sample(configured)
    assert statuses(good) == {"sample signature": "ok", "sample size": "ok"}
    assert "rsa-sha256, ed25519-sha256" in one(good, "sample signature").found

    content = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content", content)
    first = sorted((content / "newsletters").iterdir())[0]
    for language in ("ro", "en"):
        text = (first / f"{language}.md").read_text(encoding="utf-8")
        (first / f"{language}.md").write_text(text + "\n\n" + "Un paragraf lung despre orașe. " * 2000, encoding="utf-8")
    broken = doctor.sample(replace(configured, content_dir=content, dkim_keys=()))
    assert statuses(broken) == {"sample signature": "unchecked", "sample size": "error"}
    assert "Gmail clips past 102 KB" in one(broken, "sample size").found


# ---- the command ----------------------------------------------------------------------------------------

@SQLITE_ONLY
def test_the_doctor_exits_0_when_all_is_well_1_on_an_error_and_0_without_dns(
        db_settings, configured, dns_server, zone, secured_sink, trusted):
    with live_server(db_settings, tls=(trusted.cert, trusted.key)) as web:
        env = {"HERALD_BASE_URL": web.url, "HERALD_SECRET_KEY": "k" * 43, "HERALD_API_TOKEN": "t" * 43,
               "HERALD_SMTP_URL": relay_url(secured_sink.port, "starttls"), "HERALD_ORG_EMAIL": f"news@{DOMAIN}",
               "HERALD_DKIM_KEYS": ",".join(f"{key.domain}:{key.selector}:{key.path}"
                                            for key in map(load_key, configured.dkim_keys)), "COLUMNS": "300"}
        well = CliRunner().invoke(app, ["doctor", "--dns", dns_server.address], env=env)
        assert well.exit_code == 0, well.output
        *lines, summary = well.output.splitlines()
        assert summary == "0 error(s), 0 warning(s), 0 not checked."
        assert all(line.lstrip().startswith("ok ") for line in lines), well.output
        assert len(lines) == 17  # base URL, 2 secrets, 5 SMTP, SPF, 3 DKIM records, DMARC, MX, reverse DNS, 2 sample

        served(dns_server, {**zone, "_dmarc.example.org": []})
        ill = CliRunner().invoke(app, ["doctor", "--dns", dns_server.address], env=env)
        assert ill.exit_code == 1
        assert f"ERROR DMARC: {DOMAIN} has no DMARC record" in ill.output
        assert "fix: publish a TXT record at _dmarc." in ill.output

        offline = CliRunner().invoke(app, ["doctor", "--dns", f"127.0.0.1:{closed_port()}"], env=env)
        assert offline.exit_code == 0, offline.output
        assert "could not check SPF: DNS did not answer" in offline.output
