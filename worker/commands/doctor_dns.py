"""`herald doctor`'s DNS checks: SPF, each DKIM record, DMARC, MX for bounces, and the reverse DNS of this machine
when it is the relay.

Asked through dnspython: the system's resolver, or the one `--dns` names (a public resolver sees what receivers
see; the domain's own server shows a change before caches do). A lookup that gets no answer at all (no network, no
server) makes its check "could not check", never a failure.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import dns.exception
import dns.resolver
import dns.reversename

from foundation.settings import Settings
from foundation.smtp_url import parse_smtp_url
from worker.commands.findings import Finding, error, ok, unchecked, warning
from worker.delivery.dkim import DkimSigner
from worker.delivery.dkim_keys import DkimKeyError, SigningKey, load_key, signing_keys, zone_line

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
TIMEOUT = 5.0  # seconds per lookup
SPF_LOOKUPS = 10  # RFC 7208 4.6.4: a record that needs more is an error to every receiver
RETIRED_DAYS = 7  # how long an old DKIM record stays after a new key took over: mail in queues still carries it
OFFLINE_FIX = "run `herald doctor` where the internet can be reached, or name a resolver with --dns"
# Where a connected UDP socket's source address is the one this machine sends to the internet from. No packet is sent.
_PUBLIC = {socket.AF_INET: "8.8.8.8", socket.AF_INET6: "2001:4860:4860::8888"}


class Unreachable(Exception):
    """DNS gave no answer at all: no network, or no server answered."""


class Dns:
    """Lookups through one resolver. Once a lookup times out, the others are not tried: no network means every
    DNS check says so at once, rather than after a timeout each."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self.resolver = resolver
        self.silent: str | None = None  # why the resolver is taken to be out of reach

    def _answer(self, name: str, kind: str) -> list:
        if self.silent:
            raise Unreachable(self.silent)
        try:
            return list(self.resolver.resolve(name, kind))
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.resolver.NoNameservers:  # every server failed this name (SERVFAIL, refused): this lookup only
            raise Unreachable(f"no server could answer for {name} {kind}") from None
        except (dns.exception.Timeout, OSError) as problem:
            self.silent = f"{', '.join(self.resolver.nameservers) or 'no resolver'} did not answer ({type(problem).__name__})"
            raise Unreachable(self.silent) from None

    def txt(self, name: str) -> list[str]:
        """Each TXT record with its strings joined, as DKIM, SPF and DMARC read them."""
        return [b"".join(record.strings).decode("utf-8", "replace") for record in self._answer(name, "TXT")]

    def addresses(self, name: str) -> list[IPAddress]:
        return [ipaddress.ip_address(record.address) for kind in ("A", "AAAA") for record in self._answer(name, kind)]

    def mx(self, name: str) -> list[str]:
        return [record.exchange.to_text(omit_final_dot=True).rstrip(".") for record in self._answer(name, "MX")]

    def ptr(self, address: IPAddress) -> list[str]:
        return [record.target.to_text(omit_final_dot=True)
                for record in self._answer(dns.reversename.from_address(str(address)).to_text(), "PTR")]


def dns_for(server: str | None, timeout: float = TIMEOUT) -> Dns:
    """The resolver `--dns host[:port]` names, else the system's. ValueError for a server that is not an IP address."""
    if server:
        host, _, port = server.rpartition(":") if server.count(":") == 1 or "]:" in server else (server, "", "")
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [str(ipaddress.ip_address(host.strip("[]")))]
        resolver.port = int(port) if port else 53
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.resolver.Resolver(configure=False)  # no servers: every lookup is "could not check"
    resolver.timeout = resolver.lifetime = timeout
    return Dns(resolver)


def _checked(check: str, run: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return run()
    except Unreachable as problem:
        return [unchecked(check, f"DNS did not answer ({problem})", OFFLINE_FIX)]


# ---- where mail leaves from --------------------------------------------------------------------------

def outgoing_address() -> IPAddress | None:
    """The address this machine sends to the internet from (the kernel's choice for a public destination)."""
    for family, destination in _PUBLIC.items():
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((destination, 53))
                return ipaddress.ip_address(probe.getsockname()[0])
            except OSError:
                continue
    return None


def is_this_machine(address: IPAddress) -> bool:
    """Loopback, or an address of one of this machine's interfaces (one it can bind to)."""
    if address.is_loopback:
        return True
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


@dataclass(frozen=True)
class Relay:
    host: str
    addresses: list[IPAddress]  # where the world sees its mail come from
    local: bool  # the relay runs on this machine: mail leaves from this machine's address


def relay_of(settings: Settings, resolver: Dns) -> Relay:
    host = parse_smtp_url(settings.smtp_url).host
    try:
        named = [ipaddress.ip_address(host)]
    except ValueError:
        named = [ipaddress.ip_address("127.0.0.1")] if host == "localhost" else resolver.addresses(host)
    if named and all(is_this_machine(address) for address in named):
        outgoing = outgoing_address()
        return Relay(host, [outgoing] if outgoing else [], True)
    return Relay(host, named, False)


# ---- SPF ---------------------------------------------------------------------------------------------

class SpfBroken(Exception):
    """Every receiver takes the record as an error (RFC 7208 permerror)."""


class SpfUndecided(Exception):
    """The record needs what this check does not evaluate (exists, ptr, macros)."""


_RESULTS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHANISM = re.compile(r"([a-z0-9]+)(?::([^/]+))?(?:/(\d+))?(?://(\d+))?")


@dataclass
class _Spf:
    resolver: Dns
    lookups: int = field(default=0)

    def spend(self) -> None:
        self.lookups += 1
        if self.lookups > SPF_LOOKUPS:
            raise SpfBroken(f"it needs more than {SPF_LOOKUPS} DNS lookups (RFC 7208 4.6.4)")

    def result(self, domain: str, address: IPAddress) -> str:
        """pass, fail, softfail, neutral or none for mail from `address` as `domain` (RFC 7208 4 and 5)."""
        records = [text for text in self.resolver.txt(domain) if re.match(r"v=spf1( |$)", text, re.IGNORECASE)]
        if not records:
            return "none"
        if len(records) > 1:
            raise SpfBroken(f"{domain} has {len(records)} SPF records, and RFC 7208 allows one")
        redirect = None
        for term in records[0].split()[1:]:
            if "%" in term:
                raise SpfUndecided(f"{term}: macros are not evaluated here")
            name, equals, value = term.partition("=")
            if equals and ":" not in name:  # a modifier
                redirect = value if name.lower() == "redirect" else redirect
                continue
            qualifier, mechanism = (term[0], term[1:]) if term[0] in _RESULTS else ("+", term)
            if self._matches(mechanism.lower(), domain, address):
                return _RESULTS[qualifier]
        if redirect:
            self.spend()
            return self.result(redirect, address)
        return "neutral"

    def _matches(self, mechanism: str, domain: str, address: IPAddress) -> bool:
        parts = _MECHANISM.fullmatch(mechanism)
        if parts is None:
            raise SpfBroken(f"{mechanism!r} is not an SPF mechanism")
        name, value, cidr4, cidr6 = parts.groups()
        cidr = cidr6 if address.version == 6 else cidr4
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            network = ipaddress.ip_network(f"{value}/{cidr}" if cidr else value, strict=False)
            return address.version == network.version and address in network
        if name == "include":
            self.spend()
            return self.result(value, address) == "pass"
        if name in ("a", "mx"):
            self.spend()
            target = value or domain
            for host in [target] if name == "a" else self.resolver.mx(target):
                for known in self.resolver.addresses(host):
                    prefix = cidr or known.max_prefixlen
                    if known.version == address.version and address in ipaddress.ip_network(f"{known}/{prefix}", strict=False):
                        return True
            return False
        raise SpfUndecided(f"the {name} mechanism is not evaluated here")


def spf(settings: Settings, resolver: Dns) -> list[Finding]:
    domain = settings.org_email.rpartition("@")[2].lower()

    def run() -> list[Finding]:
        relay = relay_of(settings, resolver)
        mechanism = " ".join(f"ip{address.version}:{address}" for address in relay.addresses) if relay.local \
            else "include:<the SPF domain your relay's provider names>"
        if not any(re.match(r"v=spf1( |$)", text, re.IGNORECASE) for text in resolver.txt(domain)):
            return [error("SPF", f"{domain} has no SPF record, so receivers cannot tell who may send as it",
                          f'publish a TXT record at {domain}: "v=spf1 {mechanism} ~all"')]
        if not relay.addresses:
            return [unchecked("SPF", f"{domain} has an SPF record, but where mail leaves from is unknown (the relay "
                                     f"{relay.host} does not resolve, or this machine has no route out)", OFFLINE_FIX)]
        try:
            results = {address: _Spf(resolver).result(domain, address) for address in relay.addresses}
        except SpfBroken as problem:
            return [error("SPF", f"{domain}'s SPF record is an error to receivers: {problem}",
                          "fix the record (one TXT record starting v=spf1; fold includes that point further)")]
        except SpfUndecided as problem:
            return [warning("SPF", f"{domain}'s SPF record could not be evaluated here ({problem})",
                            "send a test copy to a Gmail address and read 'Show original': it says SPF: PASS")]
        refused = [f"{address} ({result})" for address, result in results.items() if result != "pass"]
        if not refused:
            return [ok("SPF", f"{domain}'s SPF record lets {', '.join(map(str, results))} send as it")]
        if relay.local:
            return [error("SPF", f"{domain}'s SPF record does not let this machine send as it: {', '.join(refused)}",
                          f"add {mechanism} to the SPF record of {domain}, before its all")]
        return [warning("SPF", f"{domain}'s SPF record does not list the relay {relay.host}'s own address "
                               f"{', '.join(refused)}; a provider's relay often sends from other addresses",
                        f"make sure the record has the include: your relay's provider documents, e.g. {mechanism}")]

    return _checked("SPF", run)


# ---- DKIM --------------------------------------------------------------------------------------------

def _tags(record: str) -> dict[str, str]:
    """A DKIM or DMARC record's tags, whitespace (folding) removed from each value."""
    pairs = (part.partition("=") for part in record.split(";") if "=" in part)
    return {name.strip().lower(): re.sub(r"\s+", "", value) for name, _, value in pairs}


def _key_record(resolver: Dns, key: SigningKey, retired: bool) -> Finding:
    check = f"DKIM {key.record_name}"
    publish = f"publish this TXT record: {zone_line(key)}"
    records = [text for text in resolver.txt(key.record_name) if "p=" in text]
    if not records:
        if retired:
            return warning(check, f"no record for the retired key {key.path.name}: mail it signed and still on "
                                  "its way fails DKIM", f"if the newer key has signed for {RETIRED_DAYS} days, remove "
                                  f"{key.domain}:{key.selector}:… from HERALD_DKIM_KEYS; if not, {publish}")
        return error(check, "no DKIM record: receivers cannot check what this key signs", publish)
    if len(records) > 1:
        return error(check, f"{len(records)} DKIM records: receivers take any one", f"keep one: {publish}")
    tags = _tags(records[0])
    if not tags.get("p"):
        return error(check, "the record is revoked (empty p=)", publish)
    if tags.get("k", "rsa") != key.key_type or tags["p"] != key.record().rpartition("p=")[2]:
        return error(check, f"the record holds another key than {key.path}", f"replace it: {publish}")
    if retired:
        return ok(check, f"matches the retired key {key.path.name}; a newer one signs. Remove this record and its "
                         f"HERALD_DKIM_KEYS entry {RETIRED_DAYS} days after the newer key began to sign")
    return ok(check, f"matches {key.path.name}, which signs ({key.algorithm})")


def dkim(settings: Settings, resolver: Dns) -> list[Finding]:
    domain = settings.org_email.rpartition("@")[2].lower()
    keygen = f"`herald dkim keygen --domain {domain} --selector SELECTOR`, publish the record it prints, and list " \
             "the key in HERALD_DKIM_KEYS"
    keys, findings = [], []
    for entry in settings.dkim_keys:
        try:
            keys.append(load_key(entry))
        except DkimKeyError as problem:
            findings.append(error(f"DKIM {entry.selector}._domainkey.{entry.domain}", str(problem), keygen))
    signing = signing_keys(tuple(keys))
    aligned = DkimSigner(signing).keys_for(domain)
    if not settings.dkim_keys:
        findings.append(error("DKIM", "nothing is signed: Gmail and Yahoo refuse or hide bulk mail without DKIM",
                              f"make a key: {keygen}"))
    elif keys and not aligned:
        findings.append(error("DKIM", f"no key signs for {domain}, the From domain (HERALD_DKIM_KEYS has "
                                      f"{', '.join(sorted({key.domain for key in keys}))})", f"make a key: {keygen}"))
    elif aligned and all(key.key_type == "ed25519" for key in aligned):
        findings.append(error("DKIM", "only an Ed25519 key signs, and many receivers cannot check Ed25519",
                              f"add an RSA key: {keygen} (--algorithm rsa)"))
    for key in keys:
        findings += _checked(f"DKIM {key.record_name}", lambda key=key: [_key_record(resolver, key, key not in signing)])
    return findings


# ---- DMARC, MX, reverse DNS --------------------------------------------------------------------------

def _parents(domain: str) -> Iterator[str]:
    """The domain, then each parent with two labels at least (where the organisational domain's record is)."""
    labels = domain.split(".")
    for start in range(max(1, len(labels) - 1)):
        yield ".".join(labels[start:])


def dmarc(settings: Settings, resolver: Dns) -> list[Finding]:
    domain = settings.org_email.rpartition("@")[2].lower()

    def run() -> list[Finding]:
        for name in _parents(domain):
            records = [text for text in resolver.txt(f"_dmarc.{name}") if re.match(r"v=DMARC1\s*(;|$)", text, re.I)]
            if len(records) > 1:
                return [error("DMARC", f"_dmarc.{name} has {len(records)} DMARC records; receivers ignore them all",
                              "keep one")]
            if records:
                policy = _tags(records[0]).get("p", "")
                if policy not in ("none", "quarantine", "reject"):
                    return [error("DMARC", f"_dmarc.{name}'s record has no valid policy (p={policy or 'missing'})",
                                  'write p=none, p=quarantine or p=reject, e.g. "v=DMARC1; p=none"')]
                meaning = {"none": "receivers only report; move to quarantine once the reports show every message "
                                   "aligned", "quarantine": "unaligned mail goes to spam",
                           "reject": "unaligned mail is refused"}[policy]
                return [ok("DMARC", f"_dmarc.{name}: p={policy} ({meaning})")]
        return [error("DMARC", f"{domain} has no DMARC record; Gmail and Yahoo require one of bulk senders",
                      f'publish a TXT record at _dmarc.{domain}: "v=DMARC1; p=none; rua=mailto:dmarc@{domain}"')]

    return _checked("DMARC", run)


def mx(settings: Settings, resolver: Dns) -> list[Finding]:
    """The bounce domain: the envelope sender's (Herald sends MAIL FROM HERALD_ORG_EMAIL)."""
    domain = settings.org_email.rpartition("@")[2].lower()

    def run() -> list[Finding]:
        hosts = resolver.mx(domain)
        if hosts in ([], [""]):
            found = "refuses all mail (null MX)" if hosts else "has no MX record"
            return [error("MX", f"{domain} {found}: bounces and replies to {settings.org_email} have nowhere to go, "
                                "and receivers distrust a sender that cannot receive",
                          f"publish an MX record for {domain} naming the server that receives its mail")]
        return [ok("MX", f"bounces to {settings.org_email} go to {', '.join(sorted(hosts))}")]

    return _checked("MX", run)


def reverse_dns(settings: Settings, resolver: Dns) -> list[Finding]:
    def run() -> list[Finding]:
        relay = relay_of(settings, resolver)
        if not relay.local:
            return [ok("reverse DNS", f"the relay {relay.host} is another machine: its reverse DNS is its operator's")]
        if not relay.addresses:
            return [unchecked("reverse DNS", "this machine has no route to the internet", OFFLINE_FIX)]
        address = relay.addresses[0]
        fix = (f"ask whoever gives this machine its address (the hosting provider) to set the PTR of {address} to a "
               f"name whose address is {address}, e.g. mail.{settings.org_email.rpartition('@')[2]}; behind NAT, "
               "that is the public address")
        names = resolver.ptr(address)
        if not names:
            return [error("reverse DNS", f"the relay is this machine, and {address} has no reverse DNS (PTR): "
                                         "receivers distrust such mail", fix)]
        confirmed = [name for name in names if address in resolver.addresses(name)]
        if not confirmed:
            return [error("reverse DNS", f"{address} is named {', '.join(names)}, but that name does not lead back "
                                         f"to {address}", fix)]
        return [ok("reverse DNS", f"{address} is {confirmed[0]}, and {confirmed[0]} is {address}")]

    return _checked("reverse DNS", run)


def all_checks(settings: Settings, resolver: Dns) -> list[Finding]:
    return [*spf(settings, resolver), *dkim(settings, resolver), *dmarc(settings, resolver), *mx(settings, resolver),
            *reverse_dns(settings, resolver)]
