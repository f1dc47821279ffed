"""DKIM keys: the files HERALD_DKIM_KEYS names, loaded once, new ones made, and the DNS TXT record of each.

RSA keys have 2048 bits (RFC 8301 asks signers for at least that much); Ed25519 (RFC 8463) signs beside RSA,
never alone, because many receivers cannot verify it yet. A key file is PEM (PKCS #8, or PKCS #1 for RSA as
opendkim-genkey writes it), unencrypted, and readable by its owner only.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from foundation.settings import DkimKeyFile

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]
KEY_TYPES: dict[str, Algorithm] = {"rsa": "rsa-sha256", "ed25519": "ed25519-sha256"}  # the k= tag, the a= tag
RSA_BITS = 2048
TXT_STRING = 255  # octets in one character-string of a TXT record (RFC 1035 3.3)


class DkimKeyError(Exception):
    """A key file Herald cannot sign with; the message names the file and the fix, in one line."""


@dataclass(frozen=True, eq=False)
class SigningKey:
    domain: str
    selector: str
    algorithm: Algorithm
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    path: Path

    @property
    def key_type(self) -> str:
        """The k= tag of its DNS record: rsa or ed25519."""
        return self.algorithm.partition("-")[0]

    def public_key(self) -> bytes:
        """The p= tag's bytes: SubjectPublicKeyInfo for RSA (RFC 6376 3.6.1), the raw 32 octets for Ed25519 (RFC 8463)."""
        public = self.private.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def record(self) -> str:
        """The TXT record to publish at `record_name`, as one string (txt_strings splits it for DNS)."""
        return f"v=DKIM1; k={self.key_type}; p={base64.b64encode(self.public_key()).decode('ascii')}"

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"


def load_key(entry: DkimKeyFile) -> SigningKey:
    """The key in `entry`'s file, or DkimKeyError saying what is wrong with it and how to make a good one."""
    fix = f"make one with `herald dkim keygen --domain {entry.domain} --selector {entry.selector}`"
    try:
        data = entry.path.read_bytes()
    except OSError as error:
        raise DkimKeyError(f"HERALD_DKIM_KEYS: cannot read {entry.path} ({error.strerror}); {fix}, or fix the "
                           "path (the file must be readable by the user Herald runs as)") from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise DkimKeyError(f"HERALD_DKIM_KEYS: {entry.path} holds no unencrypted PEM private key ({error}); "
                           f"{fix}") from None
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < RSA_BITS:
            raise DkimKeyError(f"HERALD_DKIM_KEYS: {entry.path} is a {private.key_size}-bit RSA key, and receivers "
                               f"want {RSA_BITS} bits (RFC 8301); {fix} and publish its record")
        algorithm: Algorithm = "rsa-sha256"
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        algorithm = "ed25519-sha256"
    else:
        raise DkimKeyError(f"HERALD_DKIM_KEYS: {entry.path} is a {type(private).__name__}; DKIM signs with RSA or "
                           f"Ed25519 keys only; {fix}")
    return SigningKey(entry.domain, entry.selector, algorithm, private, entry.path)


def load_keys(entries: tuple[DkimKeyFile, ...]) -> tuple[SigningKey, ...]:
    return tuple(load_key(entry) for entry in entries)


def signing_keys(keys: tuple[SigningKey, ...]) -> tuple[SigningKey, ...]:
    """The keys that sign: per domain and algorithm the first listed (the newest); the later ones are retired."""
    chosen: dict[tuple[str, str], SigningKey] = {}
    for key in keys:
        chosen.setdefault((key.domain, key.algorithm), key)
    return tuple(chosen.values())


def new_private_key(key_type: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)


def write_key(private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, path: Path) -> None:
    """PKCS #8 PEM, created with mode 0600 and never over an existing file (a key in use must not be lost)."""
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(pem)


def txt_strings(record: str) -> list[str]:
    """The record cut into the 255-octet character-strings a TXT record is made of; a resolver joins them back."""
    return [record[start:start + TXT_STRING] for start in range(0, len(record), TXT_STRING)]


def zone_line(key: SigningKey) -> str:
    """The record as a zone-file line, each string quoted, as most DNS providers also accept it pasted."""
    strings = " ".join(f'"{part}"' for part in txt_strings(key.record()))
    return f"{key.record_name}. IN TXT ( {strings} )"

