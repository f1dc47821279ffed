"""Signed links: what a token carries, how long it lives, which keys verify it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from old_links import format_1_token

from subscribers.tokens import EXPIRES, PURPOSES, BadToken, Signer, new_link_key

NOW = datetime(2027, 1, 15, 9, 30, tzinfo=UTC)
KEY = "0123456789abcdef"


@given(purpose=st.sampled_from(PURPOSES), subscriber=st.integers(0, 2**32 - 1),
       campaign=st.one_of(st.none(), st.integers(1, 2**32 - 1)), link_key=st.binary(min_size=8, max_size=8))
def test_a_token_carries_purpose_subscriber_campaign_and_link_key_and_never_the_address(purpose, subscriber, campaign,
                                                                                     link_key):
    signer = Signer("k")
    token = signer.sign(purpose, subscriber, link_key.hex(), campaign, issued_at=NOW)
    claims = signer.verify(token, purpose, NOW)
    assert (claims.purpose, claims.subscriber_id, claims.campaign_id, claims.issued_at, claims.link_key) == (
        purpose, subscriber, campaign, NOW, link_key)
    assert "@" not in token and len(token) < 60


def test_a_link_names_only_the_person_whose_link_key_it_carries():
    """Erasure destroys the key: someone later stored under the same id never answers to the link."""
    claims = Signer("k").verify(Signer("k").sign("preferences", 300, KEY, issued_at=NOW), "preferences", NOW)
    assert claims.names(KEY, NOW - timedelta(days=30))
    assert not claims.names(new_link_key(), NOW - timedelta(days=30))
    assert len({new_link_key() for _ in range(1000)}) == 1000


def test_a_format_1_link_still_opens_for_who_existed_when_it_was_signed_and_for_no_one_stored_later():
    token = format_1_token("k", "unsubscribe", 300, 2, NOW)
    claims = Signer("k").verify(token, "unsubscribe", NOW)
    assert (claims.subscriber_id, claims.campaign_id, claims.link_key) == (300, 2, None)
    assert claims.names(new_link_key(), NOW - timedelta(days=400))
    assert claims.names(new_link_key(), NOW + timedelta(microseconds=999_999)), "signed in the second they were stored"
    assert not claims.names(new_link_key(), NOW + timedelta(seconds=1)), "a later person with a reused id"


def test_only_confirmation_links_expire_after_seven_days_and_the_refusal_says_whose():
    signer = Signer("k")
    confirm = signer.sign("confirm", 7, KEY, None, issued_at=NOW)
    assert signer.verify(confirm, "confirm", NOW + EXPIRES["confirm"]).subscriber_id == 7
    with pytest.raises(BadToken) as refusal:
        signer.verify(confirm, "confirm", NOW + EXPIRES["confirm"] + timedelta(seconds=1))
    assert refusal.value.reason == "expired" and refusal.value.claims.subscriber_id == 7
    unsubscribe = signer.sign("unsubscribe", 7, KEY, 3, issued_at=NOW)
    assert signer.verify(unsubscribe, "unsubscribe", NOW + timedelta(days=3650)).campaign_id == 3


def test_old_keys_verify_the_newest_signs_and_a_removed_key_is_revoked():
    old = Signer("old").sign("preferences", 1, KEY, None)
    rotated = Signer("new", old_keys=["old"])
    assert rotated.verify(old, "preferences").subscriber_id == 1
    assert Signer("new").verify(rotated.sign("preferences", 1, KEY, None), "preferences").subscriber_id == 1
    with pytest.raises(BadToken, match="signature"):
        Signer("new").verify(old, "preferences")


def test_a_token_for_one_purpose_opens_no_other():
    token = Signer("k").sign("view", 1, KEY, 2)
    for purpose in set(PURPOSES) - {"view"}:
        with pytest.raises(BadToken, match="purpose"):
            Signer("k").verify(token, purpose)


def test_only_the_canonical_spelling_of_a_token_verifies():
    """base64 leaves the low bits of the last character unused: another letter there decodes alike."""
    signer = Signer("k")
    token = signer.sign("unsubscribe", 1, KEY, 1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same_bytes = [token[:-1] + letter for letter in alphabet
                  if letter != token[-1] and alphabet.index(letter) >> 4 == alphabet.index(token[-1]) >> 4]
    assert same_bytes
    for variant in same_bytes:
        with pytest.raises(BadToken, match="malformed"):
            signer.verify(variant, "unsubscribe")
