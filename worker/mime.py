"""A complete .eml for a rendered message: multipart/alternative, text first, quoted-printable.

The campaign engine will splice per-recipient parts into a prebuilt skeleton; this builder is the
reference it must match byte for byte, and what `herald render` writes.
"""

from __future__ import annotations

import email.policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from datetime import UTC, datetime

from worker.render import Message, Recipient
from worker.settings import Settings


def build_eml(message: Message, recipient: Recipient, settings: Settings, sent_at: datetime | None = None) -> bytes:
    mail = EmailMessage(policy=email.policy.SMTP)
    sender_user, _, sender_domain = settings.org_email.partition("@")
    to_user, _, to_domain = recipient.email.partition("@")
    mail["From"] = Address(settings.org_name, sender_user, sender_domain)
    mail["To"] = Address(recipient.name, to_user, to_domain)
    mail["Subject"] = message.subject
    mail["Date"] = format_datetime((sent_at or datetime.now(UTC)).astimezone(UTC))
    mail["Message-ID"] = make_msgid(domain=sender_domain or None)
    mail["List-Id"] = f"<{settings.list_id}>"
    unsubscribe = recipient.links.get("unsubscribe")
    if unsubscribe:
        mail["List-Unsubscribe"] = f"<{unsubscribe}>, <mailto:{settings.org_email}?subject=unsubscribe>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail["Auto-Submitted"] = "auto-generated"
    mail.set_content(message.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    mail.add_alternative(message.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return mail.as_bytes()
