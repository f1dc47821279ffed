"""Reading and measuring the headers Herald writes, as a mail client does.

Python 3.11's address parser keeps the fold between two adjacent encoded words of a display name as a
space, where RFC 2047 6.2 says a reader ignores it (CPython gh-128110, fixed upstream in 2025). A name
that needs more than one encoded word in a row (a long run of non-ASCII words, or one word longer than a
line) therefore reads back with extra spaces through the email package alone; `display_name` reads it
the way the RFC and mail clients do, from the same parse tree.
"""

from __future__ import annotations

import re
from email.message import EmailMessage

LINE = 78  # RFC 5322 2.1.1
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[QqBb]\?[^?\s]*\?=")


def header_block(eml: bytes) -> list[str]:
    """The header lines as written, before any unfolding."""
    return eml.split(b"\r\n\r\n", 1)[0].decode("utf-8").split("\r\n")


def overlong(lines: list[str]) -> list[str]:
    """Lines past LINE characters, but for one that holds nothing but a URL or address (in <>) longer than that."""
    def unbreakable(line: str) -> bool:
        value = line if line.startswith(" ") else line.partition(":")[2]
        return value.startswith(" <") and " " not in value[1:]
    return [line for line in lines if len(line) > LINE and not unbreakable(line)]


def long_encoded_words(lines: list[str]) -> list[str]:
    """Encoded words past RFC 2047's 75 characters."""
    return [word for line in lines for word in ENCODED_WORD.findall(line) if len(word) > 75]


def _inner(word: object) -> list:
    """A word's tokens without the whitespace around it."""
    return [token for token in word if token.token_type != "cfws"] if isinstance(word, list) else [word]


def _fold_between_encoded_words(word: object, following: object) -> bool:
    ends, starts = _inner(word), _inner(following)
    return (word.token_type == "atom" and following.token_type == "atom" and word[-1].token_type == "cfws"
            and bool(ends) and ends[-1].token_type == "encoded-word"
            and bool(starts) and starts[0].token_type == "encoded-word")


def display_name(message: EmailMessage, field: str = "To") -> str:
    """The first mailbox's display name in `field`, with the fold between adjacent encoded words ignored."""
    mailbox = message[field]._parse_tree.all_mailboxes[0]  # the email package's own parse of the header
    if not mailbox.display_name:
        return ""
    words = list(mailbox[0][0])  # mailbox > name-addr > display-name > its words
    text = ""
    for word, following in zip(words, [*words[1:], None]):
        ignored = following is not None and _fold_between_encoded_words(word, following)
        text += word.value[:-1] if ignored else word.value
    return text.strip(" ")


def addr_spec(message: EmailMessage, field: str = "To") -> str:
    """The first address in `field`; a UTF-8 one (RFC 6532) comes out of Python 3.11's parser as surrogates."""
    return message[field].addresses[0].addr_spec.encode("utf-8", "surrogateescape").decode("utf-8")
