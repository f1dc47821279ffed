"""`herald doctor`: a configuration checked before the first real campaign, each finding with its fix.

The web side answers at an https HERALD_BASE_URL; the secrets are set; the relay (worker/commands/doctor_relay.py);
DNS for the From domain (worker/commands/doctor_dns.py); and a sample of the first newsletter, signed and verified
locally by dkimpy and small enough that Gmail does not clip it. Exit code 1 when any finding is an error; a check
that could not be made (no network) is said, and is not one.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from typing import Annotated

import dkim as dkimpy
import typer
from rich.markup import escape

from foundation import terminal
from foundation.problems import ContentInvalid
from foundation.settings import Settings, load_settings
from worker.authoring.content import find_items, load_item
from worker.commands.doctor_dns import OFFLINE_FIX, all_checks, dns_for
from worker.commands.doctor_relay import relay
from worker.commands.findings import LABELS, Finding, error, ok, unchecked, warning
from worker.delivery.dkim import signer_for
from worker.delivery.dkim_keys import DkimKeyError
from worker.delivery.mime import build_eml
from worker.rendering.render import EDITIONS, Renderer, sample_recipient

TIMEOUT = 10.0
GMAIL_CLIP = 102 * 1024  # Gmail shows "[Message clipped]" past this much HTML, hiding the rest and the footer
TOKEN_LENGTH = 32  # characters a secret needs to be out of guessing's reach (secrets.token_urlsafe(32) gives 43)
_STYLES = {"ok": "green", "warning": "yellow", "error": "bold red", "unchecked": "cyan"}
console = terminal.output()


def base_url(settings: Settings) -> list[Finding]:
    """HERALD_BASE_URL is https (RFC 8058 one-click unsubscribe) and Herald's web side answers there."""
    url = settings.base_url
    findings = []
    if not url.startswith("https://"):
        findings.append(error("HERALD_BASE_URL", f"{url} is not https: every unsubscribe link would be plain HTTP, "
                                                 "which RFC 8058 (and so Gmail and Yahoo) refuse",
                              "set HERALD_BASE_URL to the https:// address the proxy in front of `herald web` serves"))
    probe = f"{url}/static/herald.css"
    try:
        with urllib.request.urlopen(probe, timeout=TIMEOUT) as answer:  # noqa: S310 - the operator's own URL
            findings.append(ok("HERALD_BASE_URL", f"{url} answers: Herald's web side is there ({answer.status})"))
    except urllib.error.HTTPError as problem:
        findings.append(error("HERALD_BASE_URL", f"{probe} answers {problem.code}: the address leads elsewhere than "
                                                 "Herald's web side", "point the proxy at `herald web`"))
    except (urllib.error.URLError, OSError) as problem:
        reason = getattr(problem, "reason", problem)
        if isinstance(reason, socket.gaierror) and reason.errno == socket.EAI_AGAIN:
            findings.append(unchecked("HERALD_BASE_URL", f"{url}'s host could not be looked up", OFFLINE_FIX))
        else:
            findings.append(error("HERALD_BASE_URL", f"{url} does not answer ({reason}): every link in every message "
                                                     "leads there", "start `herald web` and the proxy in front of it, "
                                                                    "or fix HERALD_BASE_URL"))
    return findings


def secrets(settings: Settings) -> list[Finding]:
    make = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    findings = []
    if not settings.secret_key_from_env:
        findings.append(error("HERALD_SECRET_KEY", f"not set: the key kept in {settings.data_dir}/secret.key signs "
                                                   "every link and keys erased addresses, and other machines do not have it",
                              f"set HERALD_SECRET_KEY to a long random value ({make}), the same on every machine, "
                              "and never change it"))
    elif len(settings.secret_key) < TOKEN_LENGTH:
        findings.append(warning("HERALD_SECRET_KEY", f"only {len(settings.secret_key)} characters long",
                                f"a new one ({make}) invalidates every link sent so far; list the old one in "
                                "HERALD_LINK_KEYS after the new one first"))
    else:
        findings.append(ok("HERALD_SECRET_KEY", "set"))
    if not settings.api_token:
        findings.append(error("HERALD_API_TOKEN", "not set: the HTTP API refuses every request",
                              f"set HERALD_API_TOKEN to a long random value ({make})"))
    elif len(settings.api_token) < TOKEN_LENGTH:
        findings.append(warning("HERALD_API_TOKEN", f"only {len(settings.api_token)} characters: it can be guessed",
                                f"set a longer one ({make})"))
    else:
        findings.append(ok("HERALD_API_TOKEN", "set"))
    return findings


def sample(settings: Settings) -> list[Finding]:
    """Each edition of the first newsletter for the sample recipient: signed, verified by dkimpy with the public
    keys of HERALD_DKIM_KEYS (no DNS: the DNS checks are the DKIM lines), and its HTML under Gmail's clipping size."""
    folders = [path for path in find_items(settings.content_dir) if path.parent.name == "newsletters"]
    if not folders:
        return [unchecked("sample message", f"no newsletter in {settings.content_dir}/newsletters to sample")]
    try:
        item, signer = load_item(folders[0]), signer_for(settings)
    except ContentInvalid:
        return [error("sample message", f"{folders[0].name} does not load", f"run `herald check {folders[0]}`")]
    except DkimKeyError as problem:
        return [unchecked("sample signature", f"a DKIM key cannot be loaded ({problem})")]
    renderer, recipient = Renderer(settings), sample_recipient(settings)
    records = {f"{key.record_name}.".encode(): key.record().encode() for key in signer.keys}
    sizes, verified, failed = {}, [], []
    for edition in EDITIONS:
        compiled = renderer.compile(item, edition, "newsletter")
        sizes[edition] = len(compiled.personalise(recipient).html.encode("utf-8"))
        message = signer.sign(build_eml(compiled, recipient, settings, feedback_id=f"doctor:newsletter:{edition}"))
        verifier = dkimpy.DKIM(message)
        for index in range(sum(name.lower() == b"dkim-signature" for name, _ in verifier.headers)):
            try:
                good = verifier.verify(idx=index, dnsfunc=lambda name, timeout=5: records.get(name))
            except dkimpy.DKIMException:
                good = False
            (verified if good else failed).append(f"{edition} #{index + 1}")
    findings = []
    domain = settings.org_email.rpartition("@")[2]
    if failed:
        findings.append(error("sample signature", f"dkimpy does not verify {', '.join(failed)} of {item.slug}",
                              "a signature Herald made does not verify: report it with the .eml of `herald render`"))
    elif verified:
        findings.append(ok("sample signature", f"{item.slug}, every edition: signed and verified by dkimpy "
                                               f"({', '.join(key.algorithm for key in signer.keys_for(domain))})"))
    else:
        findings.append(unchecked("sample signature", f"nothing signs mail from {domain} (see the DKIM lines)"))
    edition, largest = max(sizes.items(), key=lambda pair: pair[1])
    if largest >= GMAIL_CLIP:
        findings.append(error("sample size", f"{item.slug} ({edition}) has {largest / 1024:.0f} KB of HTML: Gmail "
                                             f"clips past {GMAIL_CLIP // 1024} KB, hiding the rest and the unsubscribe "
                                             "footer", "shorten it or split it in two"))
    else:
        findings.append(ok("sample size", f"{item.slug}: {largest / 1024:.0f} KB of HTML at most ({edition}), under "
                                          f"Gmail's {GMAIL_CLIP // 1024} KB clipping size"))
    return findings


def _print(finding: Finding) -> None:
    label = LABELS[finding.status]
    console.print(f"[{_STYLES[finding.status]}]{label:>15}[/] {escape(finding.check)}: {escape(finding.found)}",
                  highlight=False, soft_wrap=True)
    if finding.fix:
        console.print(f"{'fix:':>15} {escape(finding.fix)}", highlight=False, soft_wrap=True)


def doctor(
    dns: Annotated[str | None, typer.Option("--dns", metavar="HOST[:PORT]", help="The DNS resolver to ask (default: "
                                            "the system's); a public one sees what receivers see.")] = None,
) -> None:
    """Check the configuration before the first real campaign: web, secrets, SMTP relay, DNS (SPF, DKIM, DMARC, MX,
    reverse DNS) and a signed sample. Exit code 1 on any error."""
    settings = load_settings()
    try:
        resolver = dns_for(dns)
    except ValueError:
        console.print(f"[red]--dns {escape(dns or '')} is not an IP address with an optional port, like 1.1.1.1 or "
                      "127.0.0.1:5353[/red]")
        raise typer.Exit(2) from None
    findings = [*base_url(settings), *secrets(settings), *relay(settings), *all_checks(settings, resolver),
                *sample(settings)]
    for finding in findings:
        _print(finding)
    counts = {status: sum(finding.status == status for finding in findings) for status in _STYLES}
    console.print(f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['unchecked']} not checked.",
                  highlight=False)
    if counts["error"]:
        console.print("[red]Fix the errors before the first real campaign, then run `herald doctor` again.[/red]")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
