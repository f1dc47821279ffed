"""One person's data, validated and normalised the same way wherever it enters (import, form, API).

Pure functions: each takes what a person or a spreadsheet wrote and returns the stored form, or
raises `Invalid` with a reason an operator can act on.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.core import get_global
from email_validator import EmailNotValidError, validate_email

from foundation.languages import CEDILLAS
from subscribers.models import Subscriber
from subscribers.vocabulary import ORGANISATION_TYPES, SUBSCRIBER_LANGUAGES

# The longest text kept per free-text field, wherever it comes from (import, forms): the store's columns.
# Longer text is cut, never refused: a long name is still a person.
LIMITS: dict[str, int] = {field: Subscriber.__table__.c[field].type.length for field in ("name", "organisation", "city")}
# Custom attributes live in a JSON column, which has no length of its own: these are Herald's caps.
ATTRIBUTE_NAME_LIMIT = 64
ATTRIBUTE_VALUE_LIMIT = 500


class Invalid(ValueError):
    """A value that cannot be stored; its message says what is wrong and what would be right."""


@dataclass(frozen=True)
class Profile:
    email: str
    language: str
    name: str = ""
    organisation: str = ""
    organisation_type: str | None = None
    city: str = ""
    country: str | None = None
    timezone: str | None = None
    topics: frozenset[str] = frozenset()
    attributes: dict[str, str] = field(default_factory=dict)


def fold(text: str) -> str:
    """Compare labels as people mean them: no case, no diacritics, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[_\-]+", " ", bare).split())


# What no free text keeps: C0 and C1 controls (PostgreSQL refuses a NUL; a CR LF would break a mail header),
# lone surrogates (no encoding can write them), and the bidirectional overrides and isolates (U+202A-U+202E,
# U+2066-U+2069) that make a name display as something else. Tabs and line breaks among them become spaces.
_UNWANTED = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Trimmed, single-spaced, NFC, with Romanian cedillas turned into commas below and nothing of _UNWANTED."""
    visible = _UNWANTED.sub(lambda found: " " if found.group().isspace() else "", text)
    return " ".join(unicodedata.normalize("NFC", visible).translate(CEDILLAS).split())


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, without the space a cut may leave at the end."""
    return text[:limit].rstrip()


# ---- email ---------------------------------------------------------------------------------

def normalise_email(raw: str) -> str:
    """The address as validated (domain lower-cased, IDN-normalised); no DNS lookup."""
    text = raw.strip()
    if not text:
        raise Invalid("no email address")
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise Invalid(f"'{text}' is not a valid email address: {error}") from None


def email_key(email: str) -> str:
    """What makes two addresses the same person: `Ana@X.ro ` and `ana@x.ro` are one."""
    return email.strip().lower()


def email_hash(secret_key: str, email: str) -> str:
    """The keyed hash the suppression list keeps instead of the address."""
    return hmac.new(secret_key.encode(), email_key(email).encode(), hashlib.sha256).hexdigest()


# ---- country, time zone, language ----------------------------------------------------------

def _country_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for language in ("en", "ro"):
        for code, name in Locale(language).territories.items():
            if len(code) == 2 and code.isalpha():
                names[fold(name)] = code
                names[fold(code)] = code
    return names


_COUNTRIES = _country_names()
COUNTRY_CODES: frozenset[str] = frozenset(_COUNTRIES.values())


def country_code(raw: str) -> str | None:
    """ISO 3166 alpha-2 from a code or a country name in Romanian or English."""
    if not raw.strip():
        return None
    try:
        return _COUNTRIES[fold(raw)]
    except KeyError:
        raise Invalid(f"'{raw.strip()}' is not a country; write an ISO 3166 code like RO or BE, "
                      "or the country's name") from None


def infer_timezone(country: str | None) -> str | None:
    """The country's time zone, or its only European one, or the first CLDR lists."""
    zones = get_global("territory_zones").get(country or "", [])
    if not zones:
        return None
    european = [zone for zone in zones if zone.startswith("Europe/")]
    return (european if len(european) == 1 else zones)[0]


def timezone(raw: str, country: str | None) -> str | None:
    if not raw.strip():
        return infer_timezone(country)
    try:
        ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        raise Invalid(f"'{raw.strip()}' is not an IANA time zone; write one like Europe/Bucharest") from None
    return raw.strip()


_LANGUAGE_LABELS = {
    "ro": "ro", "romana": "ro", "romanian": "ro", "limba romana": "ro",
    "en": "en", "engleza": "en", "english": "en", "limba engleza": "en",
    "both": "both", "ambele": "both", "ro en": "both", "ro+en": "both", "ro, en": "both", "ro/en": "both",
    "romana si engleza": "both", "romanian and english": "both", "bilingv": "both", "bilingual": "both",
}


def language(raw: str, country: str | None) -> str:
    """`ro`, `en` or `both`; a blank one is inferred (Romania reads Romanian, elsewhere English)."""
    if not raw.strip():
        return "ro" if country == "RO" else "en"
    try:
        return _LANGUAGE_LABELS[fold(raw)]
    except KeyError:
        raise Invalid(f"'{raw.strip()}' is not a language; write {', '.join(SUBSCRIBER_LANGUAGES)}") from None


_ORGANISATION_LABELS = {
    **{kind: kind for kind in ORGANISATION_TYPES},
    "primarie": "municipality", "municipiu": "municipality", "municipalitate": "municipality",
    "oras": "municipality", "comuna": "municipality", "consiliu judetean": "municipality",
    "autoritate locala": "municipality", "local authority": "municipality", "city": "municipality",
    "minister": "ministry", "government": "ministry", "guvern": "ministry",
    "agentie": "agency", "agentie de dezvoltare regionala": "agency", "adr": "agency",
    "universitate": "university", "academic": "university", "research": "university", "cercetare": "university",
    "ong": "ngo", "asociatie": "ngo", "fundatie": "ngo", "non profit": "ngo", "nonprofit": "ngo",
    "firma": "company", "companie": "company", "societate comerciala": "company", "private": "company",
    "privat": "company", "business": "company",
    "altele": "other", "altul": "other", "alta": "other",
}


def organisation_type(raw: str) -> str | None:
    if not raw.strip():
        return None
    try:
        return _ORGANISATION_LABELS[fold(raw)]
    except KeyError:
        raise Invalid(f"'{raw.strip()}' is not an organisation type; write one of "
                      f"{', '.join(ORGANISATION_TYPES)} (or its Romanian name)") from None
