"""What a template sees: an item's texts for one language, formatted, with Markdown made HTML and text.

Pure functions of (item, language, catalogue): no I/O, so every edition is built the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup

from worker.authoring.content import EventFront, EventMeta, Item, NewsletterMeta
from worker.events.announcement import Announced
from worker.rendering import calendar_links

Change = tuple[Announced, Announced]  # (as told before, as told now)
from worker.rendering.i18n import Catalogue, day, when
from worker.rendering.markdown import LinkList, to_html, to_text


@dataclass(frozen=True)
class Prose:
    """One piece of Markdown, ready for either part of the message."""

    html: Markup
    text: str


def prose(source: str, links: LinkList) -> Prose:
    return Prose(html=to_html(source), text=to_text(source, links))


def language_block(item: Item, language: str, catalogues: dict[str, Catalogue], links: LinkList,
                   change: Change | None = None) -> dict[str, Any]:
    """The view of `item` in `language` (or its stand-in, whose language the block then carries);
    `change` (what invitees were told before, what they are told now) makes an event's update."""
    text = item.text(language)
    t = catalogues[text.language].strings
    block: dict[str, Any] = {"lang": text.language, "t": t, "subject": text.front.subject,
                             "preheader": text.front.preheader, "intro": prose(text.intro, links)}
    if isinstance(item.meta, NewsletterMeta):
        block.update(_newsletter(item.meta, text, t, links))
    else:
        block.update(_event(item.meta, text, t, links))
        block["changes"] = _changes(change, lang=text.language, t=t) if change else []
    return block


def _newsletter(meta: NewsletterMeta, text, t: dict, links: LinkList) -> dict[str, Any]:
    lang = text.language
    articles = []
    for article in meta.articles:
        words = text.front.articles.get(article.id)
        section = text.sections[article.id]
        facts = list(words.facts.items()) if words else []
        if article.partners:
            facts.insert(0, (t["partner_cities"], ", ".join(article.partners)))
        articles.append({
            "id": article.id, "title": section.title, "body": prose(section.body, links),
            "image": article.image, "image_width": article.image_width, "image_alt": words.image_alt if words else None, "facts": facts,
            "links": [(words.links[key], url) for key, url in article.links.items()],
        })
    calls = [{"title": text.front.calls[call.id].title,
              "summary": prose(text.front.calls[call.id].summary, links),
              "deadline": t["deadline"].format(when=when(meta.aware(call.deadline), lang)),
              "url": call.url} for call in meta.calls]
    upcoming = [{"title": text.front.upcoming[event.id].title, "place": text.front.upcoming[event.id].place,
                 "when": when(meta.aware(event.start), lang, meta.aware(event.end) if event.end else None),
                 "url": event.url} for event in meta.upcoming]
    return {"issue_of": t["issue_of"].format(date=day(meta.issue_date, lang)), "website": meta.website,
            "articles": articles, "calls": calls, "upcoming": upcoming}


def _event(meta: EventMeta, text, t: dict, links: LinkList) -> dict[str, Any]:
    lang = text.language
    front = text.front
    start, end = meta.aware(meta.start), meta.aware(meta.end)
    place = place_of(meta, front)
    location = place or meta.online_url or ""
    details = meta.online_url or meta.website or ""
    return {
        "title": front.title, "kind": t["event_kinds"][meta.event_kind], "organiser": front.organiser,
        "when": when(start, lang, end), "place": place, "venue": meta.venue, "online_url": meta.online_url,
        "agenda": front.agenda, "contact": meta.contact, "website": meta.website,
        "rsvp_question": t["rsvp_question"].format(when=when(meta.aware(meta.rsvp_deadline), lang)),
        "capacity": t["capacity"].format(capacity=meta.capacity) if meta.capacity else None,
        "reminder_intro": t["reminder_intro"].format(title=front.title),
        "cancel_intro": t["cancel_intro"].format(title=front.title, when=when(start, lang, end)),
        "cancel_contact": t["cancel_contact"].format(name=meta.contact.name, email=meta.contact.email),
        "waitlist_intro": t["waitlist_intro"].format(title=front.title),
        "follow_up": _follow_up(meta, front, t, links),
        "calendar": [(t["google_calendar"], calendar_links.google(front.title, start, end, location, details)),
                     (t["outlook_calendar"], calendar_links.outlook(front.title, start, end, location, details))],
    }


def place_of(meta: EventMeta, front: EventFront) -> str:
    """Where an in-person event is, in one language's words (venue name, address, city); empty online."""
    parts = (front.venue_name, meta.venue.address, meta.venue.city) if meta.venue else ()
    return ", ".join(part for part in parts if part)


def _follow_up(meta: EventMeta, front, t: dict, links: LinkList) -> dict[str, Any] | None:
    if meta.follow_up is None or front.follow_up is None:
        return None
    words = front.follow_up
    return {"subject": words.subject, "thanks": t["followup_thanks"].format(title=front.title),
            "text": prose(words.text, links),
            "links": [(words.links[name], url) for name, url in meta.follow_up.links.items()]}


def _changes(change: Change, *, lang: str, t: dict) -> list[dict[str, str]]:
    """Each changed field with what it was and what it is, in the message's language."""
    before, after = change
    shown = {"time": lambda told: when(told.starts_at.astimezone(ZoneInfo(told.timezone)), lang,
                                       told.ends_at.astimezone(ZoneInfo(told.timezone))),
             "place": lambda told: told.place or t["online"],
             "join_url": lambda told: told.join_url or "–"}
    return [{"label": t[f"changed_{name}"], "was": t["update_was"].format(old=shown[name](before)),
             "now": t["update_now"].format(new=shown[name](after))} for name in after.changes_from(before)]
