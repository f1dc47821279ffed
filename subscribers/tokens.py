"""Signed self-management links: the one place that signs and checks them, for the engine and the web app.

A token is `base64url(payload) . base64url(mac)`. The payload packs a format version, the purpose,
the subscriber id, the campaign id (0 for none), the second it was issued, and the person's link key:
never the address. The link key is a random value stored with the person (`subscribers.link_key`), so
erasure destroys it: a link names one person for good, even if their id is ever handed to someone else
(a restored backup's sequence, say), and it stops working the moment they are erased. Links of format 1,
signed before link keys existed, carry no key; they name a person only if that person already existed
when the link was signed (`Claims.names`).

The MAC is HMAC-SHA256 (truncated to 128 bits) under the newest key of HERALD_LINK_KEYS; the older
ones listed after it still verify, and removing a key revokes every link it signed. Link keys rotate
apart from HERALD_SECRET_KEY, which also keys the suppression hashes and so must never change (with
no HERALD_LINK_KEYS, links are signed with a key derived from it). MACs and person keys are compared
with `hmac.compare_digest`, in constant time.

A `herald send --test-to` copy's links are signed for subscriber id TEST_COPY (0), which no stored person
ever has (ids start at 1): the web side shows a page saying the link is from a test copy, and nothing more.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from foundation.settings import Settings

PURPOSES: tuple[str, ...] = ("unsubscribe", "preferences", "confirm", "rsvp", "view")
# Unsubscribe and preference links work for as long as the mail is kept; a confirmation is a fresh promise.
EXPIRES: Mapping[str, timedelta] = {"confirm": timedelta(days=7)}
# Where each purpose lands on the web side; RSVP links carry the answer as a query parameter.
PATHS: Mapping[str, str] = {"unsubscribe": "u", "preferences": "p", "confirm": "c", "rsvp": "r", "view": "m"}

TEST_COPY = 0  # the subscriber id of a test copy's links: nobody's
_TEST_COPY_KEY = "0" * 16

_VERSION = 2
_PAYLOAD = struct.Struct(">BBIII8s")  # version, purpose, subscriber, campaign, issued (unix seconds), link key
_PAYLOAD_V1 = struct.Struct(">BBQQI")  # version 1: version, purpose, subscriber, campaign, issued; no link key
_MAC_BYTES = 16
LINK_KEY_BYTES = 8


def new_link_key() -> str:
    """A person's link key, as stored (hex): 64 random bits, made once when they are first stored."""
    return secrets.token_hex(LINK_KEY_BYTES)


class BadToken(ValueError):
    """Why a link was refused: malformed, signature, purpose or expired (then `claims` says whose it was)."""

    def __init__(self, reason: str, claims: Claims | None = None):
        super().__init__(reason)
        self.reason = reason
        self.claims = claims


@dataclass(frozen=True)
class Claims:
    purpose: str
    subscriber_id: int
    campaign_id: int | None
    issued_at: datetime
    link_key: bytes | None  # None: a format-1 link, from before link keys

    def names(self, link_key: str, created_at: datetime) -> bool:
        """Whether the link was made for this stored person (their link key and creation time).

        A format-1 link is trusted only for someone who existed when it was signed: a person stored
        later under a reused id never answers to it.
        """
        if self.link_key is None:
            return created_at.replace(microsecond=0) <= self.issued_at
        return hmac.compare_digest(bytes.fromhex(link_key), self.link_key)

    @property
    def test_copy(self) -> bool:
        """Whether the link came in a `--test-to` copy: it names nobody, and must change nothing."""
        return self.subscriber_id == TEST_COPY


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac_key(secret: str) -> bytes:
    """A key for links alone, so the same secret keying the suppression hashes never signs a link directly."""
    return hmac.digest(secret.encode("utf-8"), b"herald link v1", "sha256")


class Signer:
    """Signs with the newest key, verifies with every key still trusted."""

    def __init__(self, secret_key: str, old_keys: Iterable[str] = ()):
        self._keys = [_mac_key(secret_key), *(_mac_key(key) for key in old_keys)]

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer:
        newest, *older = settings.link_keys or (settings.secret_key,)
        return cls(newest, older)

    def sign(self, purpose: str, subscriber_id: int, link_key: str, campaign_id: int | None = None,
             issued_at: datetime | None = None) -> str:
        """A link for the person with this id and link key (both from their stored row)."""
        issued = int((issued_at or datetime.now(UTC)).timestamp())
        payload = _PAYLOAD.pack(_VERSION, PURPOSES.index(purpose), subscriber_id, campaign_id or 0, issued,
                                bytes.fromhex(link_key))
        return f"{_b64(payload)}.{_b64(hmac.digest(self._keys[0], payload, 'sha256')[:_MAC_BYTES])}"

    def verify(self, token: str, purpose: str, now: datetime | None = None) -> Claims:
        """The token's claims if it is genuine, for `purpose`, and not expired; BadToken otherwise."""
        payload_text, _, mac_text = token.partition(".")
        try:
            payload, mac = _unb64(payload_text), _unb64(mac_text)
        except (binascii.Error, ValueError):
            raise BadToken("malformed") from None
        # Canonical encoding only: base64's spare low bits would let two strings name one token.
        if len(payload) != _PAYLOAD.size or len(mac) != _MAC_BYTES or f"{_b64(payload)}.{_b64(mac)}" != token:
            raise BadToken("malformed")
        if not any(hmac.compare_digest(hmac.digest(key, payload, "sha256")[:_MAC_BYTES], mac) for key in self._keys):
            raise BadToken("signature")
        if payload[0] == _VERSION:
            _, purpose_index, subscriber_id, campaign_id, issued, link_key = _PAYLOAD.unpack(payload)
        elif payload[0] == 1:
            (_, purpose_index, subscriber_id, campaign_id, issued), link_key = _PAYLOAD_V1.unpack(payload), None
        else:
            raise BadToken("malformed")
        if purpose_index >= len(PURPOSES):
            raise BadToken("malformed")
        claims = Claims(PURPOSES[purpose_index], subscriber_id, campaign_id or None,
                        datetime.fromtimestamp(issued, UTC), link_key)
        if claims.purpose != purpose:
            raise BadToken("purpose")
        lifetime = EXPIRES.get(purpose)
        if lifetime is not None and (now or datetime.now(UTC)) > claims.issued_at + lifetime:
            raise BadToken("expired", claims)
        return claims

    def links(self, base_url: str, subscriber_id: int, link_key: str, campaign_id: int | None,
              purposes: Iterable[str]) -> dict[str, str]:
        """The URLs a message carries, by slot purpose (worker.rendering.render.LINK_PURPOSES, plus `confirm`)."""
        signed: dict[str, str] = {}
        urls: dict[str, str] = {}
        for slot_purpose in purposes:
            purpose, _, answer = slot_purpose.partition("_")  # rsvp_yes -> rsvp, yes
            if purpose not in signed:
                signed[purpose] = self.sign(purpose, subscriber_id, link_key, campaign_id)
            url = f"{base_url}/{PATHS[purpose]}/{signed[purpose]}"
            urls[slot_purpose] = f"{url}?answer={answer}" if answer else url
        return urls

    def test_links(self, base_url: str, purposes: Iterable[str]) -> dict[str, str]:
        """The URLs a `--test-to` copy carries: genuine links that name nobody (TEST_COPY)."""
        return self.links(base_url, TEST_COPY, _TEST_COPY_KEY, None, purposes)
