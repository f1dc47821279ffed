"""The per-language string catalogues and Babel formatting of dates and times.

Templates hold no user-visible words: they take them from templates/i18n/<language>.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time, get_timezone_location

from foundation.languages import LANGUAGES, read_text
from foundation.problems import ContentInvalid, Problem
from foundation.yamldoc import YamlDoc, parse_or_report


@dataclass(frozen=True)
class Catalogue:
    language: str
    file: Path
    strings: dict[str, object]
    doc: YamlDoc


def catalogue_dir(templates_dir: Path) -> Path:
    return templates_dir / "i18n"


def load_catalogues(templates_dir: Path) -> dict[str, Catalogue]:
    """Both catalogues, checked to hold the same keys, or ContentInvalid naming what is missing."""
    problems: list[Problem] = []
    catalogues: dict[str, Catalogue] = {}
    for language in LANGUAGES:
        file = catalogue_dir(templates_dir) / f"{language}.yaml"
        if not file.is_file():
            problems.append(Problem(file, 1, f"no {language} string catalogue; copy the other language's and translate it"))
            continue
        text, notes = read_text(file)
        problems.extend(notes)
        doc = parse_or_report(file, text, 1, problems)
        if doc is None:
            continue
        if not isinstance(doc.data, dict):
            problems.append(Problem(file, 1, "expected 'key: text' lines, like the other catalogue"))
            continue
        catalogues[language] = Catalogue(language, file, doc.data, doc)
    if len(catalogues) == len(LANGUAGES):
        problems.extend(_compare(*catalogues.values()))
    if any(not p.fixable for p in problems):
        raise ContentInvalid(problems)
    return catalogues


def _ordered_keys(strings: dict, prefix: tuple = ()) -> list[tuple]:
    keys = []
    for key, value in strings.items():
        keys += _ordered_keys(value, prefix + (key,)) if isinstance(value, dict) else [prefix + (key,)]
    return keys


def _compare(first: Catalogue, second: Catalogue) -> list[Problem]:
    """A key in one catalogue only is a missing translation in the other, reported where it belongs."""
    problems = []
    for have, lack in ((first, second), (second, first)):
        lack_keys = set(_ordered_keys(lack.strings))
        ordered = _ordered_keys(have.strings)
        for index, key in enumerate(ordered):
            if key in lack_keys:
                continue
            before = next((k for k in reversed(ordered[:index]) if k in lack_keys), None)
            line = lack.doc.line_of(before) + 1 if before else lack.doc.line_of(())
            name = ".".join(key)
            problems.append(Problem(lack.file, line, f"'{name}' is missing; translate '{name}' of {have.file.name} "
                                    f"(line {have.doc.line_of(key)}) into {lack.language}"))
    return problems


_RO_VOWELS = "aeiouyăâî"


def _romanian_time_of(city: str) -> str:
    """'ora Lisabonei': the time of a city in Romanian, with the genitive where it declines simply.

    One word ending in -a takes -ei (Lisabona, Londra, Sofia, Varșovia); one ending in a consonant or -i
    takes -ului (Berlin, Paris, București); -ău takes -lui (Chișinău). Anything else would need a grammar
    book (Praga: Pragăi; Bruxelles: Bruxelles-ului; Tokyo; New York), so it reads 'ora din Praga'."""
    if " " not in city and city.isalpha():
        if city.endswith("a") and not city.endswith(("ca", "ga")):
            return f"ora {city[:-1]}ei"
        if city.endswith("ău"):
            return f"ora {city}lui"
        if city.endswith("i") or (city[-1].lower() not in _RO_VOWELS and not city.endswith("es")):
            return f"ora {city}ului"
    return f"ora din {city}"


def zone_label(moment: datetime, language: str) -> str:
    """'ora Lisabonei' / 'Lisbon time': the zone of `moment` by its city, as people say it (Babel's exemplar
    city in the reader's language), not Babel's 'Portugal (Lisbon) Time'; 'UTC+03:00' for a zone of no place."""
    zone = moment.tzinfo
    if not isinstance(zone, ZoneInfo) or "/" not in zone.key or zone.key.startswith("Etc/"):
        offset = moment.strftime("%z")
        return "UTC" if offset == "+0000" else f"UTC{offset[:3]}:{offset[3:]}"
    city = get_timezone_location(zone, locale=language, return_city=True)
    return _romanian_time_of(city) if language == "ro" else f"{city} time"


def when(moment: datetime, language: str, end: datetime | None = None) -> str:
    """'20 martie 2023, 10:00–12:00 (ora Bucureștiului)', in the zone `moment` carries."""
    zone = moment.tzinfo
    text = format_datetime(moment, "d MMMM y, HH:mm", tzinfo=zone, locale=language)
    if end is not None:
        end = end.astimezone(zone)
        if end.date() == moment.date():
            text += "–" + format_time(end, "HH:mm", tzinfo=zone, locale=language)
        else:
            text += " – " + format_datetime(end, "d MMMM y, HH:mm", tzinfo=zone, locale=language)
    return f"{text} ({zone_label(moment, language)})"


def day(value: date, language: str) -> str:
    return format_date(value, "d MMMM y", locale=language)


@lru_cache(maxsize=4096)
def local_time(span: tuple[datetime, datetime] | None, zone_name: str | None, language: str, pattern: str) -> str:
    """An event's time on someone else's clock (`pattern` holds `{when}`), or nothing when the clocks agree."""
    if span is None or not zone_name:
        return ""
    start, end = span
    zone = ZoneInfo(zone_name)
    if start.astimezone(zone).utcoffset() == start.utcoffset():
        return ""
    return pattern.format(when=when(start.astimezone(zone), language, end.astimezone(zone)))
