"""Links as Herald signed them before link keys (format 1): still in people's mailboxes after an upgrade."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from datetime import datetime

from subscribers.tokens import PURPOSES


def format_1_token(secret: str, purpose: str, subscriber_id: int, campaign_id: int | None, issued: datetime) -> str:
    """The bytes format 1 signed: version, purpose, subscriber, campaign (0: none), issued; MAC under the link key."""
    payload = struct.pack(">BBQQI", 1, PURPOSES.index(purpose), subscriber_id, campaign_id or 0,
                          int(issued.timestamp()))
    key = hmac.digest(secret.encode(), b"herald link v1", "sha256")
    mac = hmac.digest(key, payload, hashlib.sha256)[:16]

    def encode(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    return f"{encode(payload)}.{encode(mac)}"
