"""Segments: the file is validated with its lines, and SQL means exactly what the Python reading means."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from foundation.problems import ContentInvalid
from foundation.settings import PROJECT_ROOT
from subscribers.models import Subscriber, SubscriberTopic, Suppression, Topic
from subscribers.profile import email_hash
from subscribers.segments import (
    AllOf,
    AnyOf,
    AttributeIn,
    FieldIn,
    HasTopic,
    Not,
    Segment,
    load_segments,
    matches,
    select_ids,
)
from subscribers.topics import load_topics
from subscribers.vocabulary import ORGANISATION_TYPES, STATUSES, SUBSCRIBER_LANGUAGES

NOW = datetime(2027, 1, 15, tzinfo=UTC)
TOPICS = load_topics(PROJECT_ROOT / "content")


def test_the_shipped_segments_load_and_every_audience_names_one():
    segments = load_segments(PROJECT_ROOT / "content", TOPICS)
    assert {"all-subscribers", "topic-climate-neutral-cities"} <= set(segments)
    assert segments["all-subscribers"].condition == AllOf(())
    assert segments["romanian-municipalities-transfer-networks"].condition == AllOf((
        FieldIn("language", frozenset({"ro", "both"})), FieldIn("organisation_type", frozenset({"municipality"})),
        HasTopic(frozenset({"transfer-networks"}))))


@pytest.mark.parametrize(("text", "line", "message"), [
    ("a:\n  where:\n    langauge: ro\n", 3, "unknown condition 'langauge'; use all, any, not, language, "
     "organisation_type, country, city, timezone, status, topic or attribute"),
    ("a:\n  where:\n    language: [ro, fr]\n", 3, "unknown value 'fr'; expected one of ro, en, both"),
    ("a:\n  where:\n    any:\n      - topic: transfer-networks\n      - topic: smart-parking\n", 5,
     "unknown value 'smart-parking'; expected a topic in content/topics.yaml"),
    ("a:\n  where:\n    country: NO\n  description: ok\nb:\n  where:\n    country: Norway\n", 7,
     "unknown value 'Norway'; expected an ISO 3166 country code such as RO or BE"),
    ("a:\n  where:\n    not: municipality\n", 3,
     "expected a condition such as 'language: ro'; keys are all, any, not, language, organisation_type, "
     "country, city, timezone, status, topic or attribute"),
    ("a:\n  where:\n    attribute: {Role: x}\n", 3,
     "'Role' is not an attribute name; attribute names are lower-case words joined by '_'"),
    ("a:\n  where:\n    timezone: Europe/Bucuresti\n", 3,
     "'Europe/Bucuresti' is not an IANA time zone; write one like Europe/Bucharest"),
    ("a:\n  description: x\n  audience: all\n", 1, "segment 'a' takes 'description:', 'where:' and 'public:', not 'audience'"),
    ("Romanian Cities:\n  where: {country: RO}\n", 1,
     "'Romanian Cities' is not a segment name; use lower-case words joined by '-'"),
    ("a:\n  where:\n    topic: []\n", 3, "an empty list matches no one; list at least one value "
     "(a topic in content/topics.yaml)"),
    ("a:\n  where:\n    language: ro\n   city: Iași\n", 4, "YAML syntax: expected <block end>, but found "
     "'<block mapping start>'; check indentation, and quote text that contains ': ' or starts with a symbol"),
])
def test_a_mistake_in_segments_yaml_names_its_line(tmp_path, text, line, message):
    shutil.copy(PROJECT_ROOT / "content" / "topics.yaml", tmp_path)
    (tmp_path / "segments.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ContentInvalid) as caught:
        load_segments(tmp_path, TOPICS)
    [problem] = caught.value.problems
    assert (problem.file.name, problem.line, problem.message) == ("segments.yaml", line, message)


# ---- SQL == Python over random subscribers and random segments ---------------------------------

FEW_TOPICS = ("transfer-networks", "programme-calls", "digital-innovation")
CITIES = ("Cluj-Napoca", "Iași", "", "x'); DROP TABLE subscribers; --")
COUNTRIES = ("RO", "BG", "IT", None)
ROLES = ("coordonator", "trainer", "it's")

people = st.lists(st.fixed_dictionaries({
    "language": st.sampled_from(SUBSCRIBER_LANGUAGES),
    "organisation_type": st.sampled_from((*ORGANISATION_TYPES[:3], None)),
    "country": st.sampled_from(COUNTRIES),
    "city": st.sampled_from(CITIES),
    "timezone": st.sampled_from(("Europe/Bucharest", "Europe/Rome", None)),
    "status": st.sampled_from(("confirmed", *STATUSES)),  # mostly mailable, so conditions decide
    "topics": st.frozensets(st.sampled_from(FEW_TOPICS)),
    "attributes": st.dictionaries(st.sampled_from(("role", "year")), st.sampled_from(ROLES), max_size=2),
    "suppressed": st.sampled_from((False, False, False, True)),
}), min_size=5, max_size=25)


def _values(options: tuple) -> st.SearchStrategy[frozenset]:
    return st.frozensets(st.sampled_from(tuple(o for o in options if o is not None)), min_size=1)


leaves = st.one_of(
    st.builds(FieldIn, st.just("language"), _values(SUBSCRIBER_LANGUAGES)),
    st.builds(FieldIn, st.just("organisation_type"), _values(ORGANISATION_TYPES[:3])),
    st.builds(FieldIn, st.just("country"), _values(COUNTRIES)),
    st.builds(FieldIn, st.just("city"), _values(CITIES)),
    st.builds(FieldIn, st.just("timezone"), _values(("Europe/Bucharest", "Europe/Rome"))),
    st.builds(FieldIn, st.just("status"), _values(STATUSES)),
    st.builds(HasTopic, _values(FEW_TOPICS)),
    st.builds(AttributeIn, st.sampled_from(("role", "year")), _values(ROLES)),
)
conditions = st.recursive(leaves, lambda inner: st.one_of(
    st.builds(lambda parts: AllOf(tuple(parts)), st.lists(inner, max_size=3)),
    st.builds(lambda parts: AnyOf(tuple(parts)), st.lists(inner, max_size=3)),
    st.builds(Not, inner),
), max_leaves=8)


def _store(sessions, rows: list[dict]) -> list[int]:
    with sessions.begin() as session:
        for table in (SubscriberTopic, Suppression, Subscriber):
            session.execute(delete(table))
        if session.get(Topic, FEW_TOPICS[0]) is None:
            session.add_all(Topic(slug=slug, name_ro=slug, name_en=slug) for slug in FEW_TOPICS)
        ids = []
        for number, row in enumerate(rows):
            email = f"p{number}@example.org"
            subscriber = Subscriber(
                email=email, email_key=email, email_hash=email_hash("k", email), name="", organisation="",
                organisation_type=row["organisation_type"], city=row["city"], country=row["country"],
                timezone=row["timezone"], language=row["language"], attributes=row["attributes"],
                status=row["status"], created_at=NOW, updated_at=NOW,
                topics=[SubscriberTopic(topic=slug) for slug in row["topics"]])
            session.add(subscriber)
            if row["suppressed"]:
                session.add(Suppression(email_hash=email_hash("k", email), reason="manual", created_at=NOW))
            session.flush()
            ids.append(subscriber.id)
    return ids


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=people, condition=conditions)
def test_a_segment_selects_in_sql_exactly_whom_python_selects(sessions, rows, condition):
    ids = _store(sessions, rows)
    segment = Segment("random", "", condition)
    expected = [ids[n] for n, row in enumerate(rows)
                if row["status"] == "confirmed" and not row["suppressed"] and matches(condition, row)]
    with sessions() as session:
        assert list(session.scalars(select_ids(segment))) == expected
