"""Two-stage rendering: compile MJML once per (item, edition, message), then fill per-recipient slots.

Stage 1 runs Jinja2 and MRML and leaves slots such as ⟦unsubscribe_url⟧ in the HTML and text.
Stage 2 only splices escaped values into the precut pieces, so a million recipients cost a
million string joins, never a million MJML compilations.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import mrml
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from foundation.settings import Settings
from worker.authoring.content import EventMeta, Item
from worker.rendering.i18n import Catalogue, day, load_catalogues, local_time
from worker.rendering.markdown import LinkList
from worker.rendering.views import Change, language_block

EDITIONS: dict[str, tuple[str, ...]] = {"ro": ("ro",), "en": ("en",), "both": ("ro", "en")}
MESSAGES: dict[str, tuple[str, ...]] = {
    "newsletter": ("newsletter",),
    "event": ("invitation", "update", "reminder", "cancellation", "followup", "waitlist"),
}


def messages_of(item: Item) -> tuple[str, ...]:
    """The messages an item can send: a follow-up only when its meta.yaml has one."""
    return tuple(message for message in MESSAGES[item.kind]
                 if message != "followup" or getattr(item.meta, "follow_up", None))


LINK_PURPOSES = ("view", "unsubscribe", "preferences", "rsvp_yes", "rsvp_no", "rsvp_maybe", "confirm")
CONFIRMATION = "confirmation"  # the double opt-in message: no content item, only the catalogues

_SLOT = re.compile(r"⟦([a-z_]+)⟧")
_MULTILINE_ATTRIBUTE = re.compile(r'="([^"]*\n[^"]*)"')
_LANG_CLASS = re.compile(r' class="herald-lang-([a-z]{2})"')


def slot(name: str) -> Markup:
    """A stage-2 placeholder; stage 1 writes it, MRML passes it through untouched."""
    return Markup(f"⟦{name}⟧")


def lang_class(language: str) -> str:
    """The css-class of a language's block, which `compile_mjml` turns into its lang= attribute."""
    return f"herald-lang-{language}"


@dataclass(frozen=True)
class SlotTemplate:
    """Compiled output cut at its slots: even parts are fixed text, odd parts are slot names."""

    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> SlotTemplate:
        return cls(tuple(_SLOT.split(text)))

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self.parts[1::2])

    def fill(self, values: Mapping[str, str]) -> str:
        """The text with each slot replaced by its value, which the caller has escaped for this output."""
        out = list(self.parts)
        for index in range(1, len(out), 2):
            out[index] = values[out[index]]
        return "".join(out)


@dataclass(frozen=True)
class Recipient:
    email: str
    name: str = ""
    timezone: str | None = None
    links: Mapping[str, str] = field(default_factory=dict)  # purpose (LINK_PURPOSES) -> URL


@dataclass(frozen=True)
class Message:
    subject: str
    html: str
    text: str


def compile_mjml(source: str) -> str:
    """The one place MJML becomes HTML (tests count the calls); a block's `lang_class` becomes its lang=."""
    html_out = mrml.to_html(_MULTILINE_ATTRIBUTE.sub(lambda m: '="' + " ".join(m.group(1).split()) + '"', source)).content
    return _LANG_CLASS.sub(r' lang="\1"', html_out)


@dataclass(frozen=True)
class CompiledEdition:
    slug: str
    edition: str
    message: str
    language: str  # of the <html> element: the first block's
    languages: tuple[str, ...]  # of each block, in order
    subject: str
    mjml: str
    html: SlotTemplate
    text: SlotTemplate
    catalogues: Mapping[str, Catalogue]
    event_span: tuple[datetime, datetime] | None  # an event's start and end, in its zone

    @property
    def link_purposes(self) -> tuple[str, ...]:
        """The self-management links this message shows: only these are signed per recipient."""
        names = self.html.names | self.text.names
        return tuple(purpose for purpose in LINK_PURPOSES if f"{purpose}_url" in names)

    def personalise(self, recipient: Recipient) -> Message:
        html_values, text_values = self.values(recipient)
        return Message(subject=self.subject, html=self.html.fill(html_values), text=self.text.fill(text_values))

    def values(self, recipient: Recipient) -> tuple[dict[str, str], dict[str, str]]:
        """Stage-2 values by slot name: escaped for the HTML, as they are for the text."""
        text = dict(self.slot_values(recipient))
        return {name: html.escape(value, quote=True) for name, value in text.items()}, text

    def slot_values(self, recipient: Recipient) -> Iterator[tuple[str, str]]:
        """Every stage-2 value for `recipient`, by slot name."""
        yield "email", recipient.email
        for purpose in LINK_PURPOSES:
            yield f"{purpose}_url", recipient.links.get(purpose, "")
        for language in self.languages:
            t = self.catalogues[language].strings
            yield f"greeting_{language}", (t["greeting"].format(name=recipient.name) if recipient.name
                                            else t["greeting_anonymous"])
            yield f"local_time_{language}", local_time(self.event_span, recipient.timezone, language, t["your_time"])


class Renderer:
    """Holds the template environment and catalogues, loaded once for many compilations."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.catalogues = load_catalogues(settings.templates_dir)
        self.env = Environment(
            loader=FileSystemLoader(settings.templates_dir),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("mjml.j2",), default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.globals.update(slot=slot, lang_class=lang_class)

    def compile(self, item: Item, edition: str, message: str, change: Change | None = None, *,
                test_copy: bool = False) -> CompiledEdition:
        """`change` is an update's (before, now); every other message is rendered from the item alone.
        A `test_copy` (herald send --test-to) says at its top, in its languages, that it is one."""
        if message == "followup" and not (isinstance(item.meta, EventMeta) and item.meta.follow_up):
            raise ValueError(f"{item.slug} has no follow_up in meta.yaml; add one to send a follow-up")
        links = LinkList()
        blocks = [language_block(item, language, self.catalogues, links, change) for language in EDITIONS[edition]]
        return self._compile(item.slug, edition, message, blocks, links,
                             item.meta if isinstance(item.meta, EventMeta) else None, test_copy)

    def compile_confirmation(self, edition: str, expires: date) -> CompiledEdition:
        """The double opt-in request; its link (⟦confirm_url⟧) stops working on `expires`."""
        blocks = []
        for language in EDITIONS[edition]:
            t = self.catalogues[language].strings
            org = self.settings.org_name
            blocks.append({"lang": language, "t": t, "subject": t["confirm_subject"].format(org=org),
                           "preheader": t["confirm_preheader"], "title": t["confirm_title"],
                           "intro": t["confirm_intro"].format(org=org),
                           "expiry": t["confirm_expiry"].format(date=day(expires, language))})
        return self._compile(CONFIRMATION, edition, CONFIRMATION, blocks, LinkList(), None)

    def _compile(self, slug: str, edition: str, message: str, blocks: list[dict], links: LinkList,
                 event: EventMeta | None, test_copy: bool = False) -> CompiledEdition:
        first = blocks[0]
        subject = " / ".join(dict.fromkeys(self._subject(block, message) for block in blocks))
        context = {"edition": edition, "message": message, "lang": first["lang"], "blocks": blocks,
                   "subject": subject, "preheader": first["preheader"], "t": first["t"],
                   "org": self.settings, "links": links, "test_copy": test_copy}
        mjml = self.env.get_template(f"{message}.mjml.j2").render(context)
        text = self.env.get_template(f"text/{message}.txt.j2").render(context)
        if test_copy:
            text = self.env.get_template("text/_test_copy.txt.j2").render(context) + text
        return CompiledEdition(
            slug=slug, edition=edition, message=message, language=first["lang"],
            languages=tuple(block["lang"] for block in blocks), subject=subject, mjml=mjml,
            # Both parts end in one newline, as MIME bodies do, so the .eml holds them byte for byte.
            html=SlotTemplate.parse(compile_mjml(mjml).rstrip("\n") + "\n"),
            text=SlotTemplate.parse(text.rstrip("\n") + "\n"),
            catalogues=self.catalogues,
            event_span=(event.aware(event.start), event.aware(event.end)) if event else None,
        )

    @staticmethod
    def _subject(block: dict, message: str) -> str:
        t = block["t"]
        if message == "update":
            return t["update_subject"].format(subject=block["subject"])
        if message == "followup":
            return block["follow_up"]["subject"]
        if message in ("reminder", "cancellation", "waitlist"):
            key = {"reminder": "reminder_subject", "cancellation": "cancel_subject", "waitlist": "waitlist_subject"}
            return t[key[message]].format(title=block["title"])
        return block["subject"]


def sample_recipient(settings: Settings, timezone: str = "Europe/Lisbon") -> Recipient:
    """The recipient `herald render` shows: a zone other than Bucharest's, so local times appear."""
    base = settings.base_url
    return Recipient(email="ana.popescu@example.org", name="Ana Popescu", timezone=timezone,
                     links={purpose: f"{base}/preview/{purpose.replace('_', '/')}" for purpose in LINK_PURPOSES})
