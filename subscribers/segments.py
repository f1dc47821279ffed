"""Named segments from `content/segments.yaml`: parsed into a small condition tree, validated with
file and line, and turned into one SQLAlchemy query, or evaluated in Python over plain rows.

The file only ever chooses among known fields, values and topics; the query is built from
SQLAlchemy expressions with bound parameters, so nothing in the file reaches SQL as text.

    municipalities-transfer:
      description: Romanian-reading municipalities interested in transfer networks
      where:
        language: [ro, both]
        organisation_type: municipality
        topic: transfer-networks

A condition is a mapping; several keys in one mapping must all hold. Keys: `all: [...]`,
`any: [...]`, `not: {...}`, a field (`language`, `organisation_type`, `country`, `city`,
`timezone`, `status`) with a value or a list of values, `topic` with one or more topic slugs
(any of them), and `attribute: {name: value or [values]}` for custom attributes.

`public: true` puts the newsletters sent to a segment in the web archive (`/archive/`), for anyone to
read; only `all-subscribers` is public unless the file says otherwise, since a newsletter written for a
few people (a 9-person segment) is theirs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, Select, and_, false, not_, or_, select, true

from foundation.languages import read_text
from foundation.problems import ContentInvalid, Problem
from foundation.yamldoc import YamlDoc, parse_or_report
from subscribers.models import Subscriber, SubscriberTopic
from subscribers.profile import COUNTRY_CODES
from subscribers.store import not_suppressed
from subscribers.topics import Topic, load_topics
from subscribers.vocabulary import ORGANISATION_TYPES, STATUSES, SUBSCRIBER_LANGUAGES

SEGMENTS_FILE = "segments.yaml"
PUBLIC_BY_DEFAULT = frozenset({"all-subscribers"})
_KEYS = ("description", "where", "public")
_SLUG = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
ATTRIBUTE_NAME = re.compile(r"^[a-z0-9_]+$")


# ---- the condition tree --------------------------------------------------------------------

@dataclass(frozen=True)
class AllOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    part: Condition


@dataclass(frozen=True)
class FieldIn:
    field: str
    values: frozenset[str]


@dataclass(frozen=True)
class HasTopic:
    topics: frozenset[str]


@dataclass(frozen=True)
class AttributeIn:
    name: str
    values: frozenset[str]


Condition = AllOf | AnyOf | Not | FieldIn | HasTopic | AttributeIn


@dataclass(frozen=True)
class Segment:
    name: str
    description: str
    condition: Condition
    public: bool = False  # its newsletters are in the web archive


# ---- SQL and Python, the same meaning ------------------------------------------------------

_COLUMNS = {
    "language": Subscriber.language, "organisation_type": Subscriber.organisation_type,
    "country": Subscriber.country, "city": Subscriber.city, "timezone": Subscriber.timezone,
    "status": Subscriber.status,
}


def to_sql(condition: Condition) -> ColumnElement[bool]:
    """A WHERE clause over `subscribers`; a missing value (NULL) never matches, so `not` includes it."""
    match condition:
        case AllOf(parts):
            return and_(true(), *map(to_sql, parts))
        case AnyOf(parts):
            return or_(false(), *map(to_sql, parts))
        case Not(part):
            return not_(to_sql(part))
        case FieldIn(field, values):
            column = _COLUMNS[field]
            return and_(column.is_not(None), column.in_(sorted(values)))
        case HasTopic(topics):  # uncorrelated: one index range scan, not one lookup per subscriber
            return Subscriber.id.in_(select(SubscriberTopic.subscriber_id)
                                     .where(SubscriberTopic.topic.in_(sorted(topics))))
        case AttributeIn(name, values):
            value = Subscriber.attributes[name].as_string()
            return and_(value.is_not(None), value.in_(sorted(values)))
    raise TypeError(condition)


def matches(condition: Condition, row: Mapping[str, Any]) -> bool:
    """The same condition over a plain row: fields by name, `topics` a set, `attributes` a dict."""
    match condition:
        case AllOf(parts):
            return all(matches(part, row) for part in parts)
        case AnyOf(parts):
            return any(matches(part, row) for part in parts)
        case Not(part):
            return not matches(part, row)
        case FieldIn(field, values):
            return row[field] in values
        case HasTopic(topics):
            return bool(topics & set(row["topics"]))
        case AttributeIn(name, values):
            return row["attributes"].get(name) in values
    raise TypeError(condition)


def mailable() -> ColumnElement[bool]:
    """The rule above every segment: confirmed, and not on the suppression list."""
    return and_(Subscriber.status == "confirmed", not_suppressed())


def members(segment: Segment) -> ColumnElement[bool]:
    """Who a campaign to `segment` reaches: the segment's condition within the mailable."""
    return and_(mailable(), to_sql(segment.condition))


def select_ids(segment: Segment) -> Select[tuple[int]]:
    return select(Subscriber.id).where(members(segment)).order_by(Subscriber.id)


# ---- reading content/segments.yaml ---------------------------------------------------------

_FIELDS_HELP = "all, any, not, language, organisation_type, country, city, timezone, status, topic or attribute"


def _known_zone(value: str) -> bool:
    try:
        ZoneInfo(value)
        return True
    except (ZoneInfoNotFoundError, ValueError):
        return False


class _Reader:
    def __init__(self, path: Path, doc: YamlDoc, topics: dict[str, Topic], problems: list[Problem]):
        self.path, self.doc, self.topics, self.problems = path, doc, topics, problems

    def fail(self, loc: tuple[Any, ...], message: str) -> None:
        self.problems.append(Problem(self.path, self.doc.line_of(loc), message))

    def segment(self, name: Any, body: Any) -> Segment | None:
        loc = (name,)
        if not isinstance(name, str) or not _SLUG.match(name):
            self.fail(loc, f"'{name}' is not a segment name; use lower-case words joined by '-'")
            return None
        if body is None:
            body = {}
        if not isinstance(body, dict) or set(body) - set(_KEYS):
            unknown = sorted(set(body) - set(_KEYS)) if isinstance(body, dict) else []
            self.fail(loc, f"segment '{name}' takes 'description:', 'where:' and 'public:'"
                      + (f", not '{unknown[0]}'" if unknown else ""))
            return None
        description = body.get("description") or ""
        if not isinstance(description, str):
            self.fail((*loc, "description"), "a description is one line of text")
            return None
        public = body.get("public", name in PUBLIC_BY_DEFAULT)
        if not isinstance(public, bool):
            self.fail((*loc, "public"), "'public:' takes true (the newsletters sent to it are in the web archive) "
                      "or false")
            return None
        condition = self.condition(body["where"], (*loc, "where")) if "where" in body else AllOf(())
        return None if condition is None else Segment(name, description.strip(), condition, public)

    def condition(self, node: Any, loc: tuple[Any, ...]) -> Condition | None:
        if not isinstance(node, dict) or not node:
            self.fail(loc, f"expected a condition such as 'language: ro'; keys are {_FIELDS_HELP}")
            return None
        parts = [self.clause(key, value, (*loc, key)) for key, value in node.items()]
        if any(part is None for part in parts):
            return None
        return parts[0] if len(parts) == 1 else AllOf(tuple(parts))

    def clause(self, key: Any, value: Any, loc: tuple[Any, ...]) -> Condition | None:
        if key in ("all", "any"):
            if not isinstance(value, list):
                self.fail(loc, f"'{key}:' takes a list of conditions, one per '- ' line")
                return None
            parts = [self.condition(item, (*loc, index)) for index, item in enumerate(value)]
            if any(part is None for part in parts):
                return None
            return (AllOf if key == "all" else AnyOf)(tuple(parts))
        if key == "not":
            part = self.condition(value, loc)
            return None if part is None else Not(part)
        if key == "topic":
            values = self.values(value, loc, self.topics, "a topic in content/topics.yaml")
            return None if values is None else HasTopic(values)
        if key == "attribute":
            return self.attribute(value, loc)
        if key in _COLUMNS:
            return self.field(key, value, loc)
        self.fail(loc, f"unknown condition '{key}'; use {_FIELDS_HELP}")
        return None

    def field(self, key: str, value: Any, loc: tuple[Any, ...]) -> Condition | None:
        known: dict[str, Any] = {
            "language": SUBSCRIBER_LANGUAGES, "organisation_type": ORGANISATION_TYPES, "status": STATUSES,
        }
        if key in known:
            values = self.values(value, loc, known[key], f"one of {', '.join(known[key])}")
        elif key == "country":
            values = self.values(value, loc, COUNTRY_CODES, "an ISO 3166 country code such as RO or BE")
        elif key == "timezone":
            values = self.values(value, loc, None, "an IANA time zone such as Europe/Bucharest")
            if values is not None and not all(map(_known_zone, values)):
                bad = sorted(v for v in values if not _known_zone(v))[0]
                self.fail(loc, f"'{bad}' is not an IANA time zone; write one like Europe/Bucharest")
                return None
        else:
            values = self.values(value, loc, None, "a city name")
        return None if values is None else FieldIn(key, values)

    def attribute(self, value: Any, loc: tuple[Any, ...]) -> Condition | None:
        if not isinstance(value, dict) or len(value) != 1:
            self.fail(loc, "'attribute:' takes one 'name: value' (or 'name: [values]') line")
            return None
        (name, wanted), = value.items()
        if not isinstance(name, str) or not ATTRIBUTE_NAME.match(name):
            self.fail(loc, f"'{name}' is not an attribute name; attribute names are lower-case words joined by '_'")
            return None
        values = self.values(wanted, (*loc, name), None, "text")
        return None if values is None else AttributeIn(name, values)

    def values(self, value: Any, loc: tuple[Any, ...], allowed: Any, what: str) -> frozenset[str] | None:
        items = value if isinstance(value, list) else [value]
        if not items:
            self.fail(loc, f"an empty list matches no one; list at least one value ({what})")
            return None
        texts = []
        for index, item in enumerate(items):
            where = (*loc, index) if isinstance(value, list) else loc
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                self.fail(where, f"expected {what}, found {item!r}")
                return None
            text = str(item).strip()
            if allowed is not None and text not in allowed:
                self.fail(where, f"unknown value '{text}'; expected {what}")
                return None
            texts.append(text)
        return frozenset(texts)


def load_segments(content_dir: Path, topics: dict[str, Topic]) -> dict[str, Segment]:
    """Every segment in the file; raises ContentInvalid listing each mistake with its line."""
    path = content_dir / SEGMENTS_FILE
    if not path.exists():
        raise ContentInvalid([Problem(path, 1, "no segments file; create it (see content/README.md)")])
    text, problems = read_text(path)
    doc = parse_or_report(path, text, 1, problems)
    segments: dict[str, Segment] = {}
    if doc is not None:
        if not isinstance(doc.data, dict):
            problems.append(Problem(path, 1, "expected one 'segment-name:' entry per segment"))
        else:
            reader = _Reader(path, doc, topics, problems)
            for name, body in doc.data.items():
                segment = reader.segment(name, body)
                if segment is not None:
                    segments[name] = segment
    if any(not problem.fixable for problem in problems):
        raise ContentInvalid(problems)
    return segments


def segment_named(content_dir: Path, name: str) -> Segment:
    """One segment by name, for a campaign; an unknown name is reported like any mistake in the file."""
    segments = load_segments(content_dir, load_topics(content_dir))
    if name not in segments:
        raise ContentInvalid([Problem(content_dir / SEGMENTS_FILE, 1,
                                      f"no segment '{name}'; add it here or use one of {', '.join(segments)}")])
    return segments[name]


def public_segments(content_dir: Path) -> frozenset[str]:
    """The segments whose newsletters the web archive shows; none while the file (or topics.yaml) has a
    mistake, so that a broken file never makes a private newsletter public."""
    try:
        segments = load_segments(content_dir, load_topics(content_dir))
    except ContentInvalid:
        return frozenset()
    return frozenset(name for name, segment in segments.items() if segment.public)


def topics_in(condition: Condition) -> frozenset[str]:
    """The topics a segment selects people by (not those it excludes): what "only this topic" means."""
    match condition:
        case AllOf(parts) | AnyOf(parts):
            return frozenset().union(*map(topics_in, parts))
        case HasTopic(topics):
            return topics
    return frozenset()
