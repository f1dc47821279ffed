"""`herald subscribers import`: a CSV file into the store, row by row, never stopped by a bad row.

Each row ends as imported, updated, unchanged or skipped (with the reason), and the same file
imported twice changes nothing the second time. An import only adds: it fills fields the file
gives, adds topics and attributes, and confirms a pending person whose consent the file records;
it never blanks a field, drops a topic, or re-subscribes someone who unsubscribed or was erased.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from subscribers import profile as p
from subscribers.csvfile import Table, attribute_name, open_table
from subscribers.models import Consent, Subscriber, SubscriberTopic
from subscribers.profile import Invalid, Profile, email_hash, email_key
from subscribers.store import suppressed_hashes, sync_topics
from subscribers.topics import Topic, topic_matcher
from subscribers.vocabulary import FINAL_STATUSES

CHUNK = 1000
OUTCOMES = ("imported", "updated", "unchanged", "skipped")
_NO = {"", "no", "nu", "false", "fals", "0", "n", "off", "refuz", "refused", "declined", "nu sunt de acord"}
_LIST = re.compile(r"[;,|\n]")
_YES_WORDS_MAX = 20  # "Da", "Yes", "Sunt de acord"; a longer consent cell is the wording itself, kept as the purpose
_SUBSCRIBED = {"confirmed", "pending", "subscribed", "active", "activ", "abonat", "confirmat", "in asteptare"}
NO_CONSENT = "pending until they confirm by email: the file records no consent (no consent column, no --consent-source)"


@dataclass(frozen=True)
class Options:
    now: datetime
    topics: tuple[str, ...] = ()  # --topic: added to every row
    consent_source: str | None = None  # --consent-source: everyone in the file agreed, through this source
    consent_version: str = "import"  # --consent-version: the wording they agreed to


@dataclass(frozen=True)
class ConsentClaim:
    purpose: str
    given_at: datetime
    source: str


@dataclass(frozen=True)
class Candidate:
    line: int
    profile: Profile
    given: frozenset[str]  # the fields this row states; an update touches only these
    consent: ConsentClaim | None
    note: str = ""
    opted_out: str | None = None  # unsubscribed, bounced or complained, as another tool's export says
    pending: str = ""  # why the row gives no consent: reported for a person who is pending after the import

    def reason(self, status: str) -> str:
        """The row's note for the report, saying why when the person it leaves `status` is pending."""
        return "; ".join(filter(None, [self.note, self.pending if status == "pending" else ""]))


@dataclass(frozen=True)
class RowResult:
    line: int
    email: str
    outcome: str
    reason: str = ""
    pending: bool = False  # the person is pending after the import: no consent the file records


@dataclass
class Report:
    table: Table
    counts: Counter[str] = field(default_factory=Counter)
    skipped: list[RowResult] = field(default_factory=list)
    notes: list[RowResult] = field(default_factory=list)
    pending: int = 0  # people the file leaves pending, for lack of consent

    def add(self, result: RowResult) -> None:
        self.counts[result.outcome] += 1
        self.pending += result.pending
        if result.outcome == "skipped":
            self.skipped.append(result)
        elif result.reason:
            self.notes.append(result)


# ---- one row, pure ----------------------------------------------------------------------------

def _consent_date(raw: str, now: datetime) -> datetime | None:
    """ISO 8601, 31.12.2024 [10:00[:00]] or Google Forms' 12/31/2024 [10:00:00]; naive times are UTC."""
    text = raw.strip()
    if not text:
        return now
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        for pattern in ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y",
                        "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y"):
            try:
                moment = datetime.strptime(text, pattern)
                break
            except ValueError:
                continue
        else:
            return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _consent(record: dict[str, str], options: Options, topics: frozenset[str]) -> tuple[ConsentClaim | None, str]:
    stated = record.get("consent")  # None when the file has no consent column; "" when this row's cell is empty
    source = record.get("consent_source") or options.consent_source
    if stated is not None and p.fold(stated) in _NO:
        return None, f"pending: the consent column says '{stated}'" if stated else "pending: the consent column is empty"
    if stated is None and options.consent_source is None:
        return None, NO_CONSENT
    if not source:
        return None, "pending: consent is recorded but not its source; pass --consent-source"
    given_at = _consent_date(record.get("consent_date", ""), options.now)
    if given_at is None:
        return None, f"pending: consent date '{record['consent_date']}' is not a date (use YYYY-MM-DD HH:MM)"
    wording = stated if stated and len(stated) > _YES_WORDS_MAX else "newsletters and event invitations"
    purpose = wording + (f" (topics: {', '.join(sorted(topics))})" if topics else "")
    return ConsentClaim(p.clean_text(purpose), given_at, p.clean_text(source)), ""


def _opted_out(raw: str) -> str | None:
    """A status column counts only when it says the person must not be mailed; consent decides the rest."""
    status = p.fold(raw)
    if not status or status in _SUBSCRIBED:
        return None
    if status in FINAL_STATUSES:
        return status
    raise Invalid(f"'{raw}' is not a status; write {', '.join(sorted(FINAL_STATUSES))} (or leave it empty)")


def _fitted(raw: str, limit: int, label: str, notes: list[str]) -> str:
    """`raw` cleaned and cut to `limit`; a cut is added to `notes`, for the row's report (the row still imports)."""
    text = p.clean_text(raw)
    if len(text) > limit:
        notes.append(f"{label} cut to {limit} characters (the file has {len(text):,})")
    return p.cut(text, limit)


def _topics(labels: list[str], match_topic: Callable[[str], str], notes: list[str]) -> frozenset[str]:
    """The topics the row names; one the catalogue does not have is left out with a note, and the row imports."""
    found = set()
    for label in labels:
        try:
            found.add(match_topic(label))
        except Invalid as error:
            notes.append(f"{error}; left out, the rest of the row is imported")
    return frozenset(found)


def _attributes(record: dict[str, str], notes: list[str]) -> dict[str, str]:
    """Custom columns, plus the `attributes` JSON object that `herald subscribers export` writes."""
    given: dict[str, str] = {}
    if record.get("attributes"):
        try:
            data = json.loads(record["attributes"])
        except (json.JSONDecodeError, RecursionError):  # RecursionError: arrays nested thousands deep
            data = None
        if not isinstance(data, dict) or not all(isinstance(v, str | int | float) for v in data.values()):
            raise Invalid("the attributes column is not a JSON object of names and values, e.g. {\"role\": \"expert\"}")
        given.update({attribute_name(key): str(value) for key, value in data.items()})
    given.update({key.removeprefix("attribute:"): value for key, value in record.items() if key.startswith("attribute:")})
    return {key: _fitted(value, p.ATTRIBUTE_VALUE_LIMIT, f"attribute {key}", notes) for key, value in given.items()}


def parse_row(line: int, record: dict[str, str], options: Options,
              match_topic: Callable[[str], str]) -> Candidate | RowResult:
    """A row as a candidate subscriber, or a skipped result saying why."""
    raw_email = record.get("email", "")
    if "__problem__" in record:
        return RowResult(line, raw_email, "skipped", record["__problem__"])
    notes: list[str] = []
    try:
        email = p.normalise_email(raw_email)
        country = p.country_code(record.get("country", ""))
        labels = [label for label in _LIST.split(record.get("topics", "")) if label.strip()]
        topics = _topics(labels, match_topic, notes) | frozenset(map(match_topic, options.topics))
        name = record.get("name") or " ".join(filter(None, (record.get("first_name"), record.get("last_name"))))
        person = Profile(
            email=email,
            name=_fitted(name, p.LIMITS["name"], "name", notes),
            organisation=_fitted(record.get("organisation", ""), p.LIMITS["organisation"], "organisation", notes),
            organisation_type=p.organisation_type(record.get("organisation_type", "")),
            city=_fitted(record.get("city", ""), p.LIMITS["city"], "city", notes),
            country=country,
            timezone=p.timezone(record.get("timezone", ""), country),
            language=p.language(record.get("language", ""), country),
            topics=topics,
            attributes=_attributes(record, notes),
        )
        opted_out = _opted_out(record.get("status", ""))
    except Invalid as error:
        return RowResult(line, raw_email, "skipped", str(error))
    given = {name for name in ("organisation", "organisation_type", "city", "country", "timezone", "language")
             if record.get(name)}
    given |= {"name"} if name else set()
    given |= {"topics"} if topics else set()
    given |= {"attributes"} if person.attributes else set()
    consent, pending = _consent(record, options, topics)
    return Candidate(line, person, frozenset(given), consent, "; ".join(notes), opted_out, pending)


def changes(subscriber: Subscriber, candidate: Candidate) -> dict[str, object]:
    """What the row adds to a stored subscriber: the fields it states that differ, merged topics and attributes."""
    person, found = candidate.profile, {}
    for name in candidate.given - {"topics", "attributes"}:
        if getattr(subscriber, name) != getattr(person, name):
            found[name] = getattr(person, name)
    new_topics = person.topics - {link.topic for link in subscriber.topics}
    if new_topics:
        found["topics"] = new_topics
    merged = {**subscriber.attributes, **person.attributes}
    if merged != subscriber.attributes:
        found["attributes"] = merged
    if candidate.opted_out and subscriber.status != candidate.opted_out:
        found["status"] = candidate.opted_out
    elif candidate.consent and subscriber.status == "pending" and not candidate.opted_out:
        found["status"] = "confirmed"
    return found


# ---- applying rows to the store ---------------------------------------------------------------

_STAMPED = ("confirmed", "unsubscribed", "bounced", "complained")  # statuses with a `<status>_at` column


def _new_status(candidate: Candidate) -> str:
    return candidate.opted_out or ("confirmed" if candidate.consent else "pending")


def _insert(session: Session, candidates: list[Candidate], secret_key: str, options: Options) -> None:
    """New people in three multi-row statements (subscribers, their topics, their consents), not one per row."""
    if not candidates:
        return
    # A plain executemany (psycopg pipelines it; SQLite loops in C), then the new ids in one SELECT:
    # a multi-row INSERT … RETURNING makes psycopg parse a 16,000-parameter query per chunk in Python.
    session.execute(insert(Subscriber.__table__), [
        dict(email=c.profile.email, email_key=email_key(c.profile.email),
             email_hash=email_hash(secret_key, c.profile.email), name=c.profile.name,
             organisation=c.profile.organisation, organisation_type=c.profile.organisation_type,
             city=c.profile.city, country=c.profile.country, timezone=c.profile.timezone,
             language=c.profile.language, attributes=dict(c.profile.attributes), status=_new_status(c),
             created_at=options.now, updated_at=options.now)
        | {f"{status}_at": options.now if status == _new_status(c) else None for status in _STAMPED}
        for c in candidates])
    keys = [email_key(c.profile.email) for c in candidates]
    found = dict(session.execute(select(Subscriber.email_key, Subscriber.id).where(Subscriber.email_key.in_(keys))).all())
    ids = [found[key] for key in keys]
    topics = [{"subscriber_id": id_, "topic": slug} for id_, c in zip(ids, candidates, strict=True)
              for slug in sorted(c.profile.topics)]
    if topics:
        session.execute(insert(SubscriberTopic), topics)
    consents = [{"subscriber_id": id_, "purpose": c.consent.purpose, "text_version": options.consent_version,
                 "given_at": c.consent.given_at, "channel": "import", "source": c.consent.source}
                for id_, c in zip(ids, candidates, strict=True) if c.consent and not c.opted_out]
    if consents:
        session.execute(insert(Consent), consents)


def _update(subscriber: Subscriber, found: dict[str, object], candidate: Candidate, options: Options) -> None:
    for name, value in found.items():
        if name == "topics":
            subscriber.topics.extend(SubscriberTopic(topic=slug) for slug in sorted(value))
        elif name == "status":
            subscriber.status = value
            setattr(subscriber, f"{value}_at", options.now)
            if value == "confirmed":
                claim = candidate.consent
                subscriber.consents.append(Consent(purpose=claim.purpose, text_version=options.consent_version,
                                                   given_at=claim.given_at, channel="import", source=claim.source))
        else:
            setattr(subscriber, name, value)
    subscriber.updated_at = options.now


def _apply(session: Session, candidates: list[Candidate], secret_key: str, options: Options) -> Iterator[RowResult]:
    keys = [email_key(c.profile.email) for c in candidates]
    stored = {s.email_key: s for s in session.scalars(
        select(Subscriber).options(selectinload(Subscriber.topics), selectinload(Subscriber.consents))
        .where(Subscriber.email_key.in_(keys)))}
    blocked = suppressed_hashes(session, [email_hash(secret_key, c.profile.email) for c in candidates])
    new: list[Candidate] = []
    for candidate, key in zip(candidates, keys, strict=True):
        email = candidate.profile.email
        if email_hash(secret_key, email) in blocked:
            yield RowResult(candidate.line, email, "skipped", "on the suppression list (erased or blocked): never imported again")
            continue
        subscriber = stored.get(key)
        if subscriber is None:
            new.append(candidate)
            status = _new_status(candidate)
            yield RowResult(candidate.line, email, "imported", candidate.reason(status), status == "pending")
            continue
        found = changes(subscriber, candidate)
        if subscriber.status in FINAL_STATUSES:
            found.pop("status", None)
        if found:
            _update(subscriber, found, candidate, options)
            yield RowResult(candidate.line, email, "updated", candidate.reason(subscriber.status),
                            subscriber.status == "pending")
        else:
            pending = subscriber.status == "pending"
            yield RowResult(candidate.line, email, "unchanged", candidate.pending if pending else "", pending)
    _insert(session, new, secret_key, options)


def _apply_chunk(sessions: sessionmaker[Session], candidates: list[Candidate], secret_key: str,
                 options: Options) -> list[RowResult]:
    """The chunk in one transaction. If the database refuses it (a rule Herald's checks do not know), it is
    rolled back and its rows applied one at a time, so only the refused row is skipped and the rest import."""
    try:
        with sessions.begin() as session:
            return list(_apply(session, candidates, secret_key, options))
    except (DataError, IntegrityError) as error:
        if len(candidates) > 1:
            return [result for candidate in candidates
                    for result in _apply_chunk(sessions, [candidate], secret_key, options)]
        reason = str(error.orig).strip().splitlines()[0]
        return [RowResult(candidates[0].line, candidates[0].profile.email, "skipped",
                          f"the database refused this row: {reason}")]


def _chunks(items: Iterable[tuple[int, dict[str, str]]], size: int) -> Iterator[list[tuple[int, dict[str, str]]]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def import_csv(sessions: sessionmaker[Session], path: Path, catalogue: dict[str, Topic], secret_key: str,
               options: Options, overrides: dict[str, str] | None = None,
               progress: Callable[[int, int], None] = lambda rows, total: None,
               report_path: Path | None = None) -> tuple[Report, Path]:
    """Import `path`; returns the report and the CSV it was also written to (default: next to the input).

    Raises csvfile.FileProblem, before changing anything, when the file as a whole is unusable.
    Rows are committed a chunk at a time, so an interrupted import is finished by running it again.
    """
    table, records = open_table(path, overrides or {})
    match_topic = topic_matcher(catalogue)
    for slug in options.topics:
        match_topic(slug)  # an unknown --topic is the operator's mistake: stop before any row
    report = Report(table)
    first_line: dict[str, int] = {}
    report_path = report_path or path.with_name(f"{path.stem}.report.csv")
    report_path.parent.mkdir(parents=True, exist_ok=True)
    with sessions.begin() as session:
        sync_topics(session, catalogue)
    with report_path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "email", "outcome", "reason"])
        for chunk in _chunks(records, CHUNK):
            results: list[RowResult] = []
            candidates: list[Candidate] = []
            for line, record in chunk:
                parsed = parse_row(line, record, options, match_topic)
                if isinstance(parsed, RowResult):
                    results.append(parsed)
                    continue
                key = email_key(parsed.profile.email)
                if key in first_line:
                    results.append(RowResult(line, parsed.profile.email, "skipped",
                                             f"the same address as line {first_line[key]}"))
                    continue
                first_line[key] = line
                candidates.append(parsed)
            results += _apply_chunk(sessions, candidates, secret_key, options)
            for result in sorted(results, key=lambda r: r.line):
                report.add(result)
                writer.writerow([result.line, result.email, result.outcome, result.reason])
            progress(len(chunk), table.rows)
    return report, report_path
