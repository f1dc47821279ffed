"""`herald doctor`'s check of the SMTP relay HERALD_SMTP_URL names: it answers, mail and the password cross the
network inside TLS, the login is accepted; and whether it offers PIPELINING and SMTPUTF8.

It says EHLO and logs in as the engine does (worker/delivery/smtp.py), then QUITs: no message is sent.
"""

from __future__ import annotations

import ipaddress
import smtplib
import socket
import ssl

from foundation.settings import Settings
from foundation.smtp_url import SmtpTarget, parse_smtp_url
from worker.commands.doctor_dns import OFFLINE_FIX, is_this_machine
from worker.commands.findings import Finding, error, ok, unchecked, warning

TIMEOUT = 10.0
_PORTS_FIX = "check HERALD_SMTP_URL: port 587 with security=starttls, 465 with security=tls"


def _connect(target: SmtpTarget) -> smtplib.SMTP:
    if target.security == "tls":
        return smtplib.SMTP_SSL(target.host, target.port, timeout=TIMEOUT, context=ssl.create_default_context())
    return smtplib.SMTP(target.host, target.port, timeout=TIMEOUT)


def _tls(connection: smtplib.SMTP, target: SmtpTarget, local: bool) -> Finding:
    if target.security == "tls":
        return ok("SMTP TLS", f"TLS from the first byte ({connection.sock.version()})")
    offered = connection.has_extn("starttls")
    if target.security == "none":
        if local:
            return ok("SMTP TLS", "none, to a relay on this machine (nothing crosses the network)")
        return error("SMTP TLS", "security=none to a relay on another machine: every message, and the password, "
                                 "cross the network in clear",
                     "set security=starttls in HERALD_SMTP_URL" if offered else
                     "use a relay that offers TLS (STARTTLS on port 587, or TLS on 465)")
    if not offered:
        return error("SMTP TLS", "the relay does not offer STARTTLS, which security=starttls asks for",
                     "use security=tls if it listens on port 465, or a relay that offers TLS")
    try:
        connection.starttls(context=ssl.create_default_context())
    except ssl.SSLError as problem:
        return error("SMTP TLS", f"STARTTLS failed: {problem.reason or problem}",
                     "the relay's certificate must be valid for the host name in HERALD_SMTP_URL")
    connection.ehlo()
    return ok("SMTP TLS", f"STARTTLS ({connection.sock.version()})")


def _login(connection: smtplib.SMTP, target: SmtpTarget, local: bool) -> Finding:
    offered = connection.has_extn("auth")
    if not target.user:
        if offered and not local:
            return warning("SMTP login", "HERALD_SMTP_URL has no login, and the relay offers one: most relays relay "
                                         "only for those who log in", "add user:password@ to HERALD_SMTP_URL")
        return ok("SMTP login", "none: a relay that trusts this machine")
    if not offered:
        return error("SMTP login", f"HERALD_SMTP_URL logs in as {target.user}, and the relay offers no login (AUTH)",
                     "remove user:password@ from HERALD_SMTP_URL if the relay trusts this machine; otherwise check "
                     "the host and port")
    try:
        connection.login(target.user, target.password)
    except smtplib.SMTPAuthenticationError as problem:
        return error("SMTP login", f"the relay refuses the login of {target.user}: {problem.smtp_code} "
                                   f"{problem.smtp_error.decode('utf-8', 'replace')}",
                     "check the user and password in HERALD_SMTP_URL (write @ : / % in them as %40 %3A %2F %25)")
    except smtplib.SMTPException as problem:
        return error("SMTP login", f"the login of {target.user} failed: {problem}", "check HERALD_SMTP_URL")
    return ok("SMTP login", f"logged in as {target.user}")


def _extensions(connection: smtplib.SMTP) -> list[Finding]:
    pipelining = ("offers PIPELINING: a message's commands go in one round trip" if connection.has_extn("pipelining")
                  else "does not offer PIPELINING: each message takes three round trips instead of one")
    findings = [ok("SMTP PIPELINING", pipelining)]
    if connection.has_extn("smtputf8"):
        return [*findings, ok("SMTP SMTPUTF8", "offers SMTPUTF8: addresses such as ștefan@example.ro can be mailed")]
    return [*findings, warning("SMTP SMTPUTF8", "does not offer SMTPUTF8: addresses with letters beyond ASCII before "
                                                "the @ (ștefan@…) cannot be mailed, and the subscribe form refuses them",
                               "nothing, for ASCII addresses; or ask the relay's operator for SMTPUTF8 (RFC 6531)")]


def relay(settings: Settings) -> list[Finding]:
    target = parse_smtp_url(settings.smtp_url)
    where = f"{target.host}:{target.port}"
    try:
        connection = _connect(target)
    except socket.gaierror as problem:
        if problem.errno == socket.EAI_AGAIN:
            return [unchecked("SMTP relay", f"{target.host} could not be looked up ({problem.strerror})", OFFLINE_FIX)]
        return [error("SMTP relay", f"{target.host} does not resolve ({problem.strerror})", _PORTS_FIX)]
    except ssl.SSLError as problem:
        return [error("SMTP relay", f"{where}: TLS failed at connect ({problem.reason or problem})",
                      f"{_PORTS_FIX}; a relay's certificate must be valid for its host name")]
    except (OSError, smtplib.SMTPException) as problem:
        return [error("SMTP relay", f"{where} does not answer ({problem})", _PORTS_FIX)]
    findings: list[Finding] = []
    try:
        connection.ehlo()
        local = is_this_machine(ipaddress.ip_address(connection.sock.getpeername()[0]))
        greeting = connection.ehlo_resp.decode("utf-8", "replace").splitlines()[0]
        findings += [ok("SMTP relay", f"{where} answers ({greeting})"), _tls(connection, target, local)]
        if findings[-1].status != "error":  # no login over a connection that should have been encrypted
            findings += [_login(connection, target, local), *_extensions(connection)]
    except (OSError, smtplib.SMTPException) as problem:
        findings.append(error("SMTP relay", f"{where} broke off the conversation ({problem})", _PORTS_FIX))
    finally:
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()
    return findings
