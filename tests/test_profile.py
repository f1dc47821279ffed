"""The one cleaning of free text (names, organisations, cities, attributes, consent wording): what it keeps,
what it drops, and that its output is safe for every store and every mail header."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from subscribers.profile import clean_text

BIDI_CONTROLS = [chr(code) for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]


def test_control_characters_are_dropped_and_line_breaks_become_single_spaces():
    assert clean_text("Nu\x00ll") == "Null"
    assert clean_text("Ana\tMaria\r\n Popescu\x0b\x0c") == "Ana Maria Popescu"
    assert clean_text("Ion\x07\x1b[31m Popa\x7f\x85\x9b") == "Ion[31m Popa"


def test_bidirectional_overrides_and_isolates_are_dropped():
    spoofed = "\u202eexe.txt\u202c Ana \u2066Pop\u2069 \u202a\u202b\u202d\u2067\u2068"
    assert clean_text(spoofed) == "exe.txt Ana Pop"
    assert clean_text("ion\u200dana") == "ion\u200dana", "a joiner is part of some scripts' spelling: kept"


def test_lone_surrogates_are_dropped_and_the_rest_kept():
    assert clean_text("Ana\ud800 Pop\udfff") == "Ana Pop"


def test_cedillas_become_commas_below_and_the_text_is_nfc():
    assert clean_text("  S\u0327tefan   T\u0327urcanu, Iaşi ") == "Ștefan Țurcanu, Iași"


@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200))
def test_whatever_comes_in_the_result_is_storable_single_line_text(raw):
    text = clean_text(raw)
    text.encode("utf-8")  # no lone surrogate
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in BIDI_CONTROLS for ch in text)
    assert text == text.strip() and "  " not in text
    assert clean_text(text) == text, "cleaning is idempotent"
