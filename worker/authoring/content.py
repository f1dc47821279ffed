"""Content items (a folder: meta.yaml + one Markdown file per language), loaded and validated.

Everything an editor can get wrong is reported as a Problem with the file, the line and the fix,
all at once. Cedilla letters are repaired on load and still reported, so `herald check` shows them.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from foundation.languages import LANGUAGES, Language, read_text
from foundation.problems import ContentInvalid, Problem
from foundation.yamldoc import YamlDoc, parse_or_report
from worker.authoring.dates import read_date, read_time
from worker.rendering.markdown import images_without_description

_TERRITORIES = frozenset(code for code in Locale("en").territories if code.isalpha() and len(code) == 2)


# ---- field types ---------------------------------------------------------------------------

def _https(url: str) -> str:
    if url.startswith("mailto:") or re.fullmatch(r"https://[^\s/$.?#][^\s]*", url):
        return url
    raise ValueError(f"'{url}' is not an absolute https:// link; write the full https:// address")


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"'{name}' is not an IANA time zone; write one like Europe/Bucharest or Europe/Brussels"
        ) from None
    return name


def _country(code: str) -> str:
    if code not in _TERRITORIES:
        raise ValueError(f"'{code}' is not an ISO 3166 country code; write two capital letters, e.g. RO")
    return code


def _email(address: str) -> str:
    try:
        return validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"'{address}' is not an email address: {error}") from None


_OFFSET_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def _offset(value: object) -> object:
    """`7d`, `1d`, `1h`, `30m`: how long before the event a reminder goes."""
    match = re.fullmatch(r"\s*([1-9][0-9]{0,3})\s*([dhm])\s*", str(value))
    if not match:
        raise ValueError(f"'{value}' is not a time before the event; write it like 7d, 1d, 2h or 30m")
    return timedelta(**{_OFFSET_UNITS[match.group(2)]: int(match.group(1))})


def _no_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("is empty; write the text")
    return text.strip()


SLUG_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
Slug = Annotated[str, Field(pattern=SLUG_PATTERN)]
Text = Annotated[str, AfterValidator(_no_blank)]
HttpsUrl = Annotated[str, AfterValidator(_https)]
LocalDateTime = Annotated[datetime, BeforeValidator(read_time)]
Day = Annotated[date, BeforeValidator(read_date)]
TimeZoneName = Annotated[str, AfterValidator(_zone)]
Country = Annotated[str, AfterValidator(_country)]
Email = Annotated[str, AfterValidator(_email)]
Offset = Annotated[timedelta, BeforeValidator(_offset)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _unique_ids(entries: list, what: str) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise ValueError(f"{what} id '{entry.id}' is used twice; give each {what} its own id")
        seen.add(entry.id)


# ---- language-independent meta -------------------------------------------------------------

class ArticleMeta(_Strict):
    id: Slug
    image: HttpsUrl | None = None
    image_width: int | None = Field(default=None, gt=0, le=544)  # px; wider images fill the column
    partners: list[Text] = []
    links: dict[Slug, HttpsUrl] = {}


class CallMeta(_Strict):
    id: Slug
    deadline: LocalDateTime
    url: HttpsUrl | None = None


class UpcomingMeta(_Strict):
    id: Slug
    start: LocalDateTime
    end: LocalDateTime | None = None
    url: HttpsUrl | None = None

    @model_validator(mode="after")
    def _ordered(self) -> UpcomingMeta:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"upcoming event '{self.id}' ends before it starts; fix end")
        return self


class _ItemMeta(_Strict):
    timezone: TimeZoneName
    audience: Text  # a segment of segments.yaml; `herald check` lists them when it is not one
    send_at: LocalDateTime | None = None
    fallback_language: Language | None = None
    website: HttpsUrl | None = None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def aware(self, local: datetime) -> datetime:
        """A time the editor wrote, placed in the item's zone."""
        return local.replace(tzinfo=self.zone)


def _not_the_old_status(value: object) -> object:
    """Events once had `status: scheduled` (the default), which beat sent at send_at; a file from then must not
    silently become a draft, nor a draft become scheduled, so the old word is refused with the new one."""
    if value == "scheduled":
        raise ValueError("'scheduled' is no longer a status: write status: ready to let Herald send it at send_at "
                         "by itself, or status: draft (the default) to send it only with `herald send`")
    return value


class NewsletterMeta(_ItemMeta):
    kind: Literal["newsletter"]
    # draft: sent only by `herald send`; ready: beat also sends it at send_at (see content/README.md).
    status: Annotated[Literal["draft", "ready"], BeforeValidator(_not_the_old_status)] = "draft"
    issue_date: Day
    articles: list[ArticleMeta] = Field(min_length=1)
    calls: list[CallMeta] = []
    upcoming: list[UpcomingMeta] = []

    @model_validator(mode="after")
    def _ids(self) -> NewsletterMeta:
        _unique_ids(self.articles, "article")
        _unique_ids(self.calls, "call")
        _unique_ids(self.upcoming, "upcoming event")
        return self


class Venue(_Strict):
    address: Text
    city: Text
    country: Country
    map_url: HttpsUrl | None = None


class Contact(_Strict):
    name: Text
    email: Email
    phone: str | None = None


EventKind = Literal["transnational-meeting", "capacity-building-webinar", "info-day", "online-qa-session"]
ONLINE_KINDS = frozenset({"capacity-building-webinar", "online-qa-session"})


class FollowUp(_Strict):
    send_at: LocalDateTime
    links: dict[Slug, HttpsUrl] = Field(min_length=1)  # slides, recording, survey...; labels in ro.md / en.md


DEFAULT_REMINDERS = (timedelta(days=7), timedelta(days=1))
ONLINE_REMINDER = timedelta(hours=1)  # added for online events: the join link, just in time


class EventMeta(_ItemMeta):
    kind: Literal["event"]
    event_kind: EventKind
    start: LocalDateTime
    end: LocalDateTime
    online_url: HttpsUrl | None = None
    venue: Venue | None = None
    rsvp_deadline: LocalDateTime
    capacity: int | None = Field(default=None, gt=0)
    contact: Contact
    # draft and ready as a newsletter's; cancelled: the event is off, and invitees are told (control.sync).
    status: Annotated[Literal["draft", "ready", "cancelled"], BeforeValidator(_not_the_old_status)] = "draft"
    # personal: METHOD:REQUEST naming the recipient, who is asked to answer; announcement: METHOD:PUBLISH.
    invitation: Literal["personal", "announcement"] = "personal"
    reminders: list[Offset] | None = None  # None: DEFAULT_REMINDERS (+ ONLINE_REMINDER online); [] for none
    remind_unanswered: bool = False  # also remind invitees who have not answered
    follow_up: FollowUp | None = None

    @property
    def reminder_offsets(self) -> tuple[timedelta, ...]:
        if self.reminders is not None:
            return tuple(sorted(set(self.reminders), reverse=True))
        return DEFAULT_REMINDERS + ((ONLINE_REMINDER,) if self.online_url else ())

    @field_validator("follow_up")
    @classmethod
    def _follow_up_after_end(cls, follow_up: FollowUp | None, info: ValidationInfo) -> FollowUp | None:
        if follow_up and "end" in info.data and follow_up.send_at < info.data["end"]:
            raise ValueError("follow_up send_at is before the event ends; send the follow-up after the event")
        return follow_up

    @field_validator("end")
    @classmethod
    def _ends_after_start(cls, end: datetime, info: ValidationInfo) -> datetime:
        if "start" in info.data and end <= info.data["start"]:
            raise ValueError("end is not after start; the event must end after it starts")
        return end

    @field_validator("rsvp_deadline")
    @classmethod
    def _rsvp_before_start(cls, deadline: datetime, info: ValidationInfo) -> datetime:
        if "start" in info.data and deadline > info.data["start"]:
            raise ValueError("rsvp_deadline is after start; set the RSVP deadline before the event starts")
        return deadline

    @model_validator(mode="after")
    def _has_a_place(self) -> EventMeta:
        if self.event_kind in ONLINE_KINDS and not self.online_url:
            raise ValueError(f"a {self.event_kind} is online: add online_url with the join link")
        if self.event_kind not in ONLINE_KINDS and not (self.venue or self.online_url):
            raise ValueError(f"a {self.event_kind} needs a place: add venue (address, city, country)")
        return self


# ---- language texts (front matter) ---------------------------------------------------------

class ArticleText(_Strict):
    image_alt: Text | None = None
    facts: dict[Text, Text] = {}
    links: dict[Slug, Text] = {}


class CallText(_Strict):
    title: Text
    summary: str = ""


class UpcomingText(_Strict):
    title: Text
    place: Text | None = None


class _Front(_Strict):
    subject: Annotated[Text, Field(max_length=150)]
    preheader: Annotated[Text, Field(max_length=200)]


class NewsletterFront(_Front):
    articles: dict[Slug, ArticleText] = {}
    calls: dict[Slug, CallText] = {}
    upcoming: dict[Slug, UpcomingText] = {}


class AgendaEntry(_Strict):
    time: Annotated[str, Field(pattern=CLOCK_PATTERN)]
    item: Text


class FollowUpText(_Strict):
    subject: Annotated[Text, Field(max_length=150)]
    text: Text  # Markdown: thanks, and what the links hold
    links: dict[Slug, Text] = {}


class EventFront(_Front):
    title: Text
    organiser: Text
    venue_name: Text | None = None
    agenda: list[AgendaEntry] = []
    follow_up: FollowUpText | None = None


_MODELS: dict[str, tuple[type[_ItemMeta], type[_Front]]] = {"newsletter": (NewsletterMeta, NewsletterFront),
                                                             "event": (EventMeta, EventFront)}


# ---- the loaded item ----------------------------------------------------------------------

@dataclass(frozen=True)
class Section:
    """An article's Markdown, cut from the body at its `## Title {#id}` heading."""

    title: str
    body: str
    line: int


@dataclass(frozen=True)
class LanguageText:
    language: Language
    file: Path
    front: NewsletterFront | EventFront
    intro: str  # Markdown before the first section (newsletter) or the whole body (event)
    sections: dict[str, Section]
    doc: YamlDoc  # the front matter, for the line of each field
    last_line: int


@dataclass(frozen=True)
class Item:
    path: Path
    slug: str
    meta: NewsletterMeta | EventMeta
    texts: dict[str, LanguageText]  # only the languages that have a file
    notes: list[Problem] = field(default_factory=list)  # repaired on load, reported by check

    @property
    def kind(self) -> str:
        return self.meta.kind

    def text(self, language: str) -> LanguageText:
        """The text for `language`, or the declared stand-in (its `language` tells which it is)."""
        if language in self.texts:
            return self.texts[language]
        return self.texts[self.meta.fallback_language]  # load_item guarantees it exists


# ---- loading ------------------------------------------------------------------------------

_FRONT = re.compile(r"\A---[ \t]*\n(.*?)^---[ \t]*$\n?", re.DOTALL | re.MULTILINE)
_HEADING = re.compile(r"^##(?!#)[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_HEADING_ID = re.compile(r"^(.*?)\s*\{#([a-z0-9]+(?:-[a-z0-9]+)*)\}$")


@dataclass(frozen=True)
class _Elsewhere:
    """The other file of an item, whose fields are sometimes written in this one."""

    model: type[BaseModel]
    named: str  # "meta.yaml", or "ro.md and en.md (…)"


def _validate(model: type[BaseModel], doc: YamlDoc, path: Path, problems: list[Problem],
              elsewhere: _Elsewhere) -> BaseModel | None:
    if not isinstance(doc.data, dict):
        problems.append(Problem(path, doc.first_line, "expected 'key: value' lines; see content/README.md"))
        return None
    try:
        return model.model_validate(doc.data)
    except ValidationError as error:
        for loc, message in _explain(error.errors(), model, doc.data, path.name, elsewhere):
            problems.append(Problem(path, doc.line_of(loc), message))
        return None


# Lists (and dicts keyed by id) whose entries an editor knows by their id, or by their place in the list.
_ENTRIES = {"articles": "article", "calls": "call", "upcoming": "upcoming event", "agenda": "agenda entry",
            "reminders": "reminder", "partners": "partner"}
_PATTERN_FIXES = {SLUG_PATTERN: "is not an id; use lowercase letters, digits and hyphens, e.g. co4cities",
                  CLOCK_PATTERN: 'is not a time of day; write it as "HH:MM", in quotes'}


def _explain(issues: list[dict], model: type[BaseModel], data: dict, name: str,
             elsewhere: _Elsewhere) -> list[tuple[tuple[str | int, ...], str]]:
    """Pydantic's findings as sentences an editor can act on: an entry named by its id, a misspelt field with the
    spelling it is close to (and not reported again as missing), a field of the other file said to belong there."""
    found, guessed = [], set()
    for issue in issues:
        loc = _loc(issue)
        if issue["type"] == "extra_forbidden":
            message, guess = _unknown_field(loc, model, data, name, elsewhere)
            found.append((loc, message))
            if guess:
                guessed.add((*loc[:-1], guess))
    for issue in issues:
        loc = _loc(issue)
        if issue["type"] != "extra_forbidden" and not (issue["type"] == "missing" and loc in guessed):
            found.append((loc, _sentence(issue, loc, data)))
    return found


def _sentence(issue: dict, loc: tuple[str | int, ...], data: dict) -> str:
    subject = _subject(loc, data) if loc else ""
    if issue["type"] == "missing":
        return f"{subject} is missing; add it (see content/README.md)"
    message = issue["msg"].removeprefix("Value error, ")
    if issue["type"] == "string_pattern_mismatch" and issue["ctx"]["pattern"] in _PATTERN_FIXES:
        message = f"'{issue['input']}' {_PATTERN_FIXES[issue['ctx']['pattern']]}"
    elif issue["type"] == "string_type" and isinstance(issue["input"], int | float):
        message = f"YAML reads {issue['input']} as a number; put the text in quotes"
    return f"{subject}: {message}" if subject else message


def _loc(issue: dict) -> tuple[str | int, ...]:
    return tuple(part for part in issue["loc"] if not str(part).startswith("function-") and part != "[key]")


def _unknown_field(loc: tuple[str | int, ...], model: type[BaseModel], data: dict, name: str,
                   elsewhere: _Elsewhere) -> tuple[str, str | None]:
    """The sentence for a field the model does not have, and the field it is probably a misspelling of."""
    field_name, parent = str(loc[-1]), loc[:-1]
    if not parent and field_name in elsewhere.model.model_fields:
        return f"'{field_name}' belongs in {elsewhere.named}, not in {name}; move it there", None
    where = f" in {_subject(parent, data)}" if parent else ""
    guess = difflib.get_close_matches(field_name, _fields_at(model, parent), n=1, cutoff=0.75)
    if guess:
        return f"unknown field '{field_name}'{where}: did you mean {guess[0]}?", guess[0]
    return f"unknown field '{field_name}'{where}; remove it or fix its spelling (see content/README.md)", None


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the model that the value at `loc` is validated against."""
    current: type[BaseModel] | None = model
    for part in loc:
        field_info = current.model_fields.get(part) if isinstance(part, str) else None
        if field_info is not None:  # else a list index or a dict key: `current` is the entry's model already
            current = _model_in(field_info.annotation)
        if current is None:
            return []
    return list(current.model_fields)


def _model_in(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, map(_model_in, get_args(annotation))), None)


def _subject(loc: tuple[str | int, ...], data: object) -> str:
    """`'deadline' of call 'urbact-iv'` for calls.0.deadline: the entry by its id, or by its place, from 1."""
    for index in range(len(loc) - 1, 0, -1):
        group = loc[index - 1]
        if isinstance(group, str) and group in _ENTRIES:
            entry = f"{_ENTRIES[group]} {_entry_name(loc[: index + 1], data)}"
            if loc[: index - 1]:
                entry += f" of {_subject(loc[: index - 1], data)}"
            rest = ".".join(map(str, loc[index + 1:]))
            return f"'{rest}' of {entry}" if rest else entry
    return "'" + ".".join(map(str, loc)) + "'"


def _entry_name(loc: tuple[str | int, ...], data: object) -> str:
    value = data
    for part in loc:
        value = value[part] if isinstance(value, dict | list) and _holds(value, part) else None
    if isinstance(value, dict) and isinstance(value.get("id"), str):
        return f"'{value['id']}'"
    return str(loc[-1] + 1) if isinstance(loc[-1], int) else f"'{loc[-1]}'"


def _holds(container: dict | list, key: str | int) -> bool:
    return key in container if isinstance(container, dict) else isinstance(key, int) and 0 <= key < len(container)


def _split_sections(path: Path, body: str, first_line: int, problems: list[Problem]) -> tuple[str, dict[str, Section]]:
    matches = list(_HEADING.finditer(body))
    intro = body[: matches[0].start()] if matches else body
    sections: dict[str, Section] = {}
    for index, match in enumerate(matches):
        line = first_line + body.count("\n", 0, match.start())
        end = matches[index + 1].start() if index + 1 < len(matches) else len(body)
        titled = _HEADING_ID.match(match.group(1))
        if not titled:
            problems.append(Problem(path, line, "article heading has no id; end it with {#article-id} "
                                    "naming an article of meta.yaml, e.g. `## Title {#co4cities}`"))
            continue
        title, slug = titled.groups()
        if slug in sections:
            problems.append(Problem(path, line, f"article '{slug}' has two headings; keep one"))
            continue
        sections[slug] = Section(title=title, body=body[match.end(): end].strip("\n"), line=line)
    return intro.strip("\n"), sections


def _load_language(path: Path, model: type[BaseModel], meta_model: type[BaseModel], sectioned: bool,
                   problems: list[Problem], notes: list[Problem]) -> LanguageText | None:
    text, cedillas = read_text(path)
    notes.extend(cedillas)
    match = _FRONT.match(text)
    if not match:
        problems.append(Problem(path, 1, "no front matter; start the file with a line '---', the "
                                "subject and preheader, and another '---'"))
        return None
    doc = parse_or_report(path, match.group(1), 2, problems)
    front = _validate(model, doc, path, problems, _Elsewhere(meta_model, "meta.yaml")) if doc else None
    body_line = 1 + text.count("\n", 0, match.end())
    body = text[match.end():]
    for line, address in images_without_description(body):
        problems.append(Problem(path, body_line + line, f"image {address} has no description; write "
                                f"![description]({address}), saying what the picture shows"))
    if sectioned:
        intro, sections = _split_sections(path, body, body_line, problems)
    else:
        intro, sections = body.strip("\n"), {}
    if front is None:
        return None
    return LanguageText(language=path.stem, file=path, front=front, intro=intro, sections=sections,
                        doc=doc, last_line=max(1, len(text.splitlines())))


def load_item(folder: Path) -> Item:
    """Load and cross-check one item; raises ContentInvalid listing every problem.

    A path the file system refuses (too long, unreadable) is a problem too, never an OSError: the API
    passes paths it was given.
    """
    try:
        return _load_item(folder.resolve())
    except OSError as error:
        raise ContentInvalid([Problem(Path(error.filename or folder), 1,
                                      f"cannot be read: {error.strerror}")]) from None


def _linked_out(path: Path, folder: Path) -> Problem | None:
    """A file that is a symbolic link out of its item folder is never read: it could lead to any file Herald can
    read (data/secret.key), and the item would mail it."""
    if path.resolve().is_relative_to(folder):
        return None
    return Problem(path, 1, "is a symbolic link out of the item folder; put the file itself in the folder")


def _load_item(folder: Path) -> Item:
    problems: list[Problem] = []
    notes: list[Problem] = []
    meta_file = folder / "meta.yaml"
    if not meta_file.is_file():
        raise ContentInvalid([Problem(meta_file, 1, "no meta.yaml; every item folder needs one (see content/README.md)")])
    if linked := _linked_out(meta_file, folder):
        raise ContentInvalid([linked])
    meta_text, cedillas = read_text(meta_file)
    notes.extend(cedillas)
    doc = parse_or_report(meta_file, meta_text, 1, problems)
    given = doc.data if doc and isinstance(doc.data, dict) else {}
    kind = given.get("kind")
    models = _MODELS.get(kind) if isinstance(kind, str) else None
    meta = None
    if doc and models is None:
        problems.append(Problem(meta_file, doc.line_of(("kind",)),
                                f"kind is {kind!r}; write `kind: newsletter` or `kind: event`"))
    elif doc:
        meta_model, front_model = models
        meta = _validate(meta_model, doc, meta_file, problems,
                         _Elsewhere(front_model, "ro.md and en.md (between their --- lines)"))
    texts: dict[str, LanguageText] = {}
    if models:  # the language files are checked even when meta.yaml is not valid: every problem at once
        fallback = given.get("fallback_language")
        for language in LANGUAGES:
            path = folder / f"{language}.md"
            if path.is_file() and (linked := _linked_out(path, folder)):
                problems.append(linked)
            elif path.is_file():
                loaded = _load_language(path, front_model, meta_model, kind == "newsletter", problems, notes)
                if loaded:
                    texts[language] = loaded
            elif fallback in (None, language) or not (folder / f"{fallback}.md").is_file():
                problems.append(Problem(meta_file, 1, f"no {language}.md: write the {language} text, or add "
                                        f"`fallback_language: <ro|en>` to let the other language stand in"))
    if meta is not None:
        for text in texts.values():
            check = _cross_check if isinstance(meta, NewsletterMeta) else _cross_check_follow_up
            problems.extend(check(meta, doc, meta_file, text))
    if problems:
        raise ContentInvalid(problems + notes)
    return Item(path=folder, slug=folder.name, meta=meta, texts=texts, notes=notes)


def _cross_check(meta: NewsletterMeta, doc: YamlDoc, meta_file: Path, text: LanguageText) -> list[Problem]:
    """Every id in meta has its texts in this language, and nothing in the texts is orphaned."""
    found: list[Problem] = []
    front: NewsletterFront = text.front
    front_doc = text.doc
    name = text.file.name
    for article in meta.articles:
        if article.id not in text.sections:
            found.append(Problem(text.file, text.last_line,
                                 f"article '{article.id}' of meta.yaml has no section here; add `## Title {{#{article.id}}}`"))
        words = front.articles.get(article.id, ArticleText())
        if article.image and not words.image_alt:
            found.append(Problem(text.file, front_doc.line_of(("articles", article.id)),
                                 f"article '{article.id}' has an image but no image_alt in {name}; "
                                 f"describe the image under articles: {article.id}: image_alt:"))
        for link in article.links:
            if link not in words.links:
                found.append(Problem(text.file, front_doc.line_of(("articles", article.id, "links")),
                                     f"link '{link}' of article '{article.id}' has no label in {name}; "
                                     f"add articles: {article.id}: links: {link}: <label>"))
        for link in words.links:
            if link not in article.links:
                found.append(Problem(text.file, front_doc.line_of(("articles", article.id, "links", link)),
                                     f"link '{link}' has no address in meta.yaml; add it under the article's links there"))
    article_ids = {article.id for article in meta.articles}
    for slug, section in text.sections.items():
        if slug not in article_ids:
            found.append(Problem(text.file, section.line, f"article '{slug}' is not in meta.yaml; add it to articles there"))
    for slug in front.articles:
        if slug not in article_ids:
            found.append(Problem(text.file, front_doc.line_of(("articles", slug)),
                                 f"article '{slug}' is not in meta.yaml; add it to articles there or remove it here"))
    for group in ("calls", "upcoming"):
        ids = [entry.id for entry in getattr(meta, group)]
        words = getattr(front, group)
        for slug in ids:
            if slug not in words:
                found.append(Problem(text.file, front_doc.line_of((group,)),
                                     f"{group} '{slug}' of meta.yaml has no title in {name}; add {group}: {slug}: title: <text>"))
        for slug in words:
            if slug not in ids:
                found.append(Problem(text.file, front_doc.line_of((group, slug)),
                                     f"{group} '{slug}' is not in meta.yaml; add it there or remove it here"))
    return found


def _cross_check_follow_up(meta: EventMeta, doc: YamlDoc, meta_file: Path, text: LanguageText) -> list[Problem]:
    """A follow-up in meta.yaml has its subject, text and a label for each link in this language."""
    words: FollowUpText | None = text.front.follow_up
    name = text.file.name
    if meta.follow_up is None:
        if words is None:
            return []
        return [Problem(text.file, text.doc.line_of(("follow_up",)),
                        f"follow_up in {name} has no follow_up in meta.yaml; add follow_up: send_at and links there")]
    if words is None:
        return [Problem(text.file, 1, f"meta.yaml has a follow_up but {name} does not; add follow_up: subject, "
                                      "text and links (a label for each link) to the front matter")]
    found = []
    for link in meta.follow_up.links:
        if link not in words.links:
            found.append(Problem(text.file, text.doc.line_of(("follow_up", "links")),
                                 f"follow-up link '{link}' has no label in {name}; add follow_up: links: {link}: <label>"))
    for link in words.links:
        if link not in meta.follow_up.links:
            found.append(Problem(text.file, text.doc.line_of(("follow_up", "links", link)),
                                 f"follow-up link '{link}' has no address in meta.yaml; add it under follow_up: links"))
    return found


def in_content(item: Item, content_dir: Path) -> bool:
    """Whether the item lies inside the content folder: only such an item can be sent (a campaign names its
    item relative to that folder); a draft anywhere else can still be checked and rendered."""
    return item.path.is_relative_to(content_dir.resolve())


def find_items(root: Path) -> list[Path]:
    """Item folders under `root` (or `root` itself when it is one), in a stable order; none under a path the
    file system cannot look up (too long for it, say), which is no folder of items."""
    try:
        if (root / "meta.yaml").is_file():
            return [root]
        return sorted(meta.parent for meta in root.rglob("meta.yaml"))
    except OSError:
        return []
