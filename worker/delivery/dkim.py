"""DKIM signatures (RFC 6376) on the bytes the MIME skeleton builds: one per message, since every body differs.

relaxed/relaxed canonicalisation; rsa-sha256, and ed25519-sha256 (RFC 8463) beside it when a key is configured.
The signature covers the headers receivers judge a bulk message by, RFC 8058's List-Unsubscribe and
List-Unsubscribe-Post among them; From is listed twice (over-signed), so a second From added on the way breaks
it. A header a message lacks (a confirmation has no List-Unsubscribe) is signed as absent: none can be added.

Why not dkimpy for signing: it signs a 47 KB invitation in 7.6 ms (its RSA is pure Python), five times what
the engine spends on the rest of a message; the canonicalisation here with `cryptography`'s RSA takes under
0.5 ms (bench/README.md, "DKIM"). dkimpy stays the independent verifier, in the tests and in `herald doctor`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from foundation.settings import DkimKeyFile, Settings
from worker.delivery.dkim_keys import DkimKeyError, SigningKey, load_keys, signing_keys
from worker.delivery.mime import fold

SIGNED_HEADERS = ("from", "from", "to", "subject", "date", "message-id", "mime-version", "content-type", "list-id",
                  "list-unsubscribe", "list-unsubscribe-post", "feedback-id")
# h= folded at its colons (FWS is allowed there, RFC 6376 3.5) so that every header line stays within 78 characters.
_H_TAG = ["h=from:from:to:subject:date:message-id:", "mime-version:content-type:list-id:",
          "list-unsubscribe:list-unsubscribe-post:", "feedback-id;"]
_WSP = re.compile(rb"[ \t]+")
_B_CHUNK = 64  # characters of the signature per folded line


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: runs of spaces and tabs become one space, none ends a line, no empty lines at the end.

    Written with bytes.find and replace rather than one regular expression: a message is mostly single spaces,
    and a regular expression visits each of them (0.8 ms for 43 KB against 0.09 ms here)."""
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    if b"  " in body:
        pieces, start, position = [], 0, body.find(b"  ")
        while position != -1:
            end = position + 2
            while body[end:end + 1] == b" ":
                end += 1
            pieces += [body[start:position], b" "]
            start, position = end, body.find(b"  ", end)
        pieces.append(body[start:])
        body = b"".join(pieces)
    if b" \r\n" in body:
        body = body.replace(b" \r\n", b"\r\n")
    body = body.rstrip(b"\r\n")
    return body + b"\r\n" if body else b""


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 3.4.2, for a field already unfolded: name in lower case, runs of whitespace one space, none at
    either end of the value, and none around the colon."""
    return name.strip(b" \t").lower() + b":" + _WSP.sub(b" ", value).strip(b" \t")


def header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """The header block's fields as (name, value) in order, each value unfolded (its CRLFs removed)."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + line)
        elif line:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields


def _signed_fields(fields: list[tuple[bytes, bytes]]) -> bytes:
    """The canonical fields h= names, each occurrence taken from the bottom up (RFC 6376 5.4.2)."""
    by_name: dict[bytes, list[bytes]] = {}
    for name, value in fields:
        by_name.setdefault(name.strip(b" \t").lower(), []).append(value)
    signed = []
    for name in SIGNED_HEADERS:
        values = by_name.get(name.encode("ascii"))
        if values:
            signed.append(relaxed_header(name.encode("ascii"), values.pop()) + b"\r\n")
    return b"".join(signed)


def _from_domain(fields: list[tuple[bytes, bytes]]) -> str:
    """The domain of the last From address, in lower case ('' when there is none)."""
    values = [value for name, value in fields if name.strip(b" \t").lower() == b"from"]
    if not values:
        return ""
    address = values[-1].rpartition(b"<")[2].partition(b">")[0] if b"<" in values[-1] else values[-1]
    return address.rpartition(b"@")[2].strip().decode("ascii", "replace").lower()


class DkimSigner:
    """Signs with the keys for a message's From domain; a signer without keys returns messages unchanged."""

    def __init__(self, keys: Iterable[SigningKey]) -> None:
        self.keys = tuple(keys)
        self._thread: tuple[int, ThreadPoolExecutor] | None = None  # (the process it belongs to, the thread)

    def signing(self, message: bytes) -> bytes | Future[bytes]:
        """`sign` on this process's signing thread, for a sender with a round trip to wait for meanwhile
        (SmtpSender.send waits for the result once the server has accepted the envelope). OpenSSL lets go of the
        GIL while it makes the RSA signature, so the signature costs the send path little of its time
        (bench/README.md, "DKIM"). Without keys, the message itself."""
        if not self.keys:
            return message
        if self._thread is None or self._thread[0] != os.getpid():  # a worker's pool children are forked
            self._thread = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="dkim"))
        return self._thread[1].submit(self.sign, message)

    def keys_for(self, domain: str) -> tuple[SigningKey, ...]:
        """The keys whose d= aligns with `domain` (DMARC's relaxed alignment: the domain or a parent of it),
        the most specific domain's only."""
        matching = [key for key in self.keys if domain == key.domain or domain.endswith("." + key.domain)]
        longest = max((len(key.domain) for key in matching), default=0)
        return tuple(key for key in matching if len(key.domain) == longest)

    def sign(self, message: bytes) -> bytes:
        """`message` (CRLF lines) with a DKIM-Signature per key for its From domain placed on top."""
        if not self.keys:
            return message
        end = message.find(b"\r\n\r\n")
        head, body = (message[:end + 2], message[end + 4:]) if end >= 0 else (message, b"")
        fields = header_fields(head)
        keys = self.keys_for(_from_domain(fields))
        if not keys:
            return message
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode("ascii")
        signed, timestamp = _signed_fields(fields), int(time.time())
        return b"".join(_signature(key, body_hash, signed, timestamp) for key in keys) + message


def _signature(key: SigningKey, body_hash: str, signed: bytes, timestamp: int) -> bytes:
    """One DKIM-Signature header, CRLF-ended: its tags with b= empty are hashed after the signed fields
    (RFC 6376 3.7), then the signature goes into b=, folded."""
    tags = [f"v=1; a={key.algorithm}; c=relaxed/relaxed;", f"d={key.domain};", f"s={key.selector};",
            f"t={timestamp};", *_H_TAG, f"bh={body_hash};"]
    unsigned = fold("DKIM-Signature", [*tags, "b="]).encode("ascii")
    data = signed + relaxed_header(b"dkim-signature", unsigned.partition(b":")[2].replace(b"\r\n", b""))
    if isinstance(key.private, rsa.RSAPrivateKey):
        signature = key.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:  # RFC 8463 3: Ed25519 signs the SHA-256 digest of the same data
        signature = key.private.sign(hashlib.sha256(data).digest())
    value = base64.b64encode(signature).decode("ascii")
    chunks = ["b=" + value[:_B_CHUNK - 2]] + [value[at:at + _B_CHUNK] for at in range(_B_CHUNK - 2, len(value), _B_CHUNK)]
    return (fold("DKIM-Signature", [*tags, *chunks]) + "\r\n").encode("ascii")


@cache
def _signer(entries: tuple[DkimKeyFile, ...]) -> DkimSigner:
    return DkimSigner(signing_keys(load_keys(entries)))


def signer_for(settings: Settings) -> DkimSigner:
    """The signer of HERALD_DKIM_KEYS, its keys read once per process; raises DkimKeyError for a file it cannot use."""
    return _signer(settings.dkim_keys)


def unusable_keys(settings: Settings) -> str | None:
    """Why HERALD_DKIM_KEYS cannot sign, in one line, or None; the keys stay loaded for this process (and the
    worker's pool children, forked after this check)."""
    try:
        signer_for(settings)
    except DkimKeyError as error:
        return str(error)
    return None
