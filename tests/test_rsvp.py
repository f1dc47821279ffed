"""Answering an invitation (`/r/{token}`) and an event's public calendar (`/events/{slug}.ics`), through the
real web app on SQLite and PostgreSQL: a GET records nothing, a POST records, the waitlist moves up, the
deadline and a cancellation close answers, refused links change nothing."""

from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import icalendar
import pytest
from engine import seed
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy import select

from foundation import clock
from foundation.clock import OFFSET_FILE_ENV
from foundation.settings import PROJECT_ROOT, Settings
from subscribers.models import Subscriber
from subscribers.tokens import Signer
from web.app import create_app
from web.pages.pages import csrf_token
from worker.authoring.content import load_item
from worker.campaigns import ledger
from worker.campaigns.models import Rsvp
from worker.events import lifecycle
from worker.events.ics import uid_for
from worker.rendering.i18n import when

EVENT = "events/di4c-partners-meeting-botosani"
SLUG = EVENT.rpartition("/")[2]
ITEM = load_item(PROJECT_ROOT / "content" / EVENT)
META = ITEM.meta
DEADLINE = META.aware(META.rsvp_deadline)
RSVP_SLOTS = ["rsvp_yes", "rsvp_no", "rsvp_maybe"]


@dataclass
class Invited:
    client: TestClient
    settings: Settings
    campaign_id: int
    people: list[int]  # subscriber ids, in id order
    link_keys: dict[int, str]  # each one's link key, which their links carry

    signed: dict[int, dict[str, str]] = field(default_factory=dict)

    def path(self, subscriber_id: int, answer: str = "yes") -> str:
        """The path (and query) of the email's button for `answer`, as the engine signs it (once per person)."""
        if subscriber_id not in self.signed:
            self.signed[subscriber_id] = Signer.from_settings(self.settings).links(
                self.settings.base_url, subscriber_id, self.link_keys[subscriber_id], self.campaign_id, RSVP_SLOTS)
        parts = urlsplit(self.signed[subscriber_id][f"rsvp_{answer}"])
        return f"{parts.path}?{parts.query}"

    def token(self, subscriber_id: int) -> str:
        return self.path(subscriber_id).split("/")[2].partition("?")[0]

    def answer(self, subscriber_id: int, answer: str, lang: str = "en", token: str | None = None):
        """The page's form posted, with its CSRF proof."""
        token = token or self.token(subscriber_id)
        return self.client.post(f"/r/{token}?lang={lang}",
                                data={"answer": answer, "csrf": csrf_token(self.settings.secret_key, token)})


@pytest.fixture
def at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`at(moment)`: from now on the engine's clock reads `moment` (and flows on); three days before the deadline
    to start with, so the shipped event's dates work whatever today is."""
    offset = tmp_path / "clock-offset"
    monkeypatch.setenv(OFFSET_FILE_ENV, str(offset))

    def set_clock(moment: datetime) -> None:
        offset.write_text(str((moment - datetime.now(UTC)).total_seconds()), encoding="ascii")

    set_clock(DEADLINE - timedelta(days=3))
    return set_clock


@pytest.fixture
def invited(db_settings: Settings, sessions, at) -> Invited:
    """60 fictional people, an invitation campaign for the Botoșani meeting, and its revision 0 published."""
    seed(db_settings, 60, seed_value=31)
    now = clock.now()
    with sessions() as session:
        campaign = ledger.create(session, item=EVENT, message="invitation", segment="all-subscribers",
                                    edition=None, send_at=None, origin="cli", now=now)
        lifecycle.publish(session, EVENT, META, now)
        session.commit()
        keys = dict(session.execute(select(Subscriber.id, Subscriber.link_key).order_by(Subscriber.id)).all())
    return Invited(TestClient(create_app(db_settings)), db_settings, campaign.id, list(keys), keys)


def answers(sessions) -> list[tuple]:
    with sessions() as session:
        return sorted(tuple(row) for row in session.execute(
            select(Rsvp.subscriber_id, Rsvp.answer, Rsvp.answered_at, Rsvp.queued_at, Rsvp.promoted_at)))


def rsvp_of(sessions, subscriber_id: int) -> Rsvp | None:
    with sessions() as session:
        return session.scalar(select(Rsvp).where(Rsvp.subscriber_id == subscriber_id))


def checked(page: str) -> list[str]:
    return re.findall(r'name="answer" value="(\w+)" required checked', page)


def person_speaking(sessions, language: str, timezone: str | None = None) -> int:
    """A subscriber whose language is `language`, set to the time zone `timezone`."""
    with sessions() as session:
        person = session.scalars(select(Subscriber).where(Subscriber.language == language)
                                 .order_by(Subscriber.id)).first()
        person.timezone = timezone
        session.commit()
        return person.id


# ---- the answer page ----------------------------------------------------------------------------

def test_the_link_preselects_its_answer_and_a_get_records_nothing(invited, sessions):
    person = invited.people[0]
    page = invited.client.get(invited.path(person, "no") + "&lang=en")
    assert page.status_code == 200 and checked(page.text) == ["no"]
    assert escape(ITEM.text("en").front.title) in page.text
    assert when(DEADLINE, "en") in page.text and "change your answer, until" in page.text
    assert '<fieldset' in page.text and "<legend>Will you attend?</legend>" in page.text
    assert '<label for="answer-maybe">Maybe</label>' in page.text
    assert f'name="csrf" value="{csrf_token(invited.settings.secret_key, invited.token(person))}"' in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Referrer-Policy"] == "no-referrer"
    assert checked(invited.client.get(invited.path(person, "maybe")).text) == ["maybe"]
    assert answers(sessions) == [], "a GET (a link scanner, a preview) records nothing"


def test_a_post_records_the_answer_and_it_can_be_changed_until_the_deadline(invited, sessions, at):
    person = invited.people[0]
    done = invited.answer(person, "yes")
    assert done.status_code == 200 and "Your answer is recorded: Yes, I will attend" in done.text
    assert "waiting list" not in done.text
    first = rsvp_of(sessions, person)
    assert (first.answer, first.queued_at) == ("yes", None)

    page = invited.client.get(f"/r/{invited.token(person)}?lang=en")
    assert checked(page.text) == ["yes"] and "Your answer so far: Yes, I will attend" in page.text

    at(DEADLINE - timedelta(minutes=1))
    changed = invited.answer(person, "maybe")
    assert changed.status_code == 200 and "Your answer is recorded: Maybe" in changed.text
    again = rsvp_of(sessions, person)
    assert again.id == first.id and again.answer == "maybe" and again.answered_at > first.answered_at
    assert [row[:2] for row in answers(sessions)] == [(person, "maybe")]


def test_the_41st_yes_waits_in_line_and_gets_the_place_someone_gives_up(invited, sessions):
    assert META.capacity == 40
    for person in invited.people[:40]:
        assert invited.answer(person, "yes").status_code == 200
    first_in_line, second_in_line = invited.people[40:42]
    waiting = invited.answer(first_in_line, "yes")
    assert waiting.status_code == 200 and "on the waiting list, number 1" in waiting.text, waiting.text
    assert "number 2" in invited.answer(second_in_line, "yes").text
    assert rsvp_of(sessions, first_in_line).queued_at is not None

    invited.answer(invited.people[3], "no")
    promoted = rsvp_of(sessions, first_in_line)
    assert promoted.queued_at is None and promoted.promoted_at is not None and promoted.answer == "yes"
    with sessions() as session:
        event = lifecycle.event_of(session, EVENT)
        assert lifecycle.answer_of(session, event, second_in_line).waitlist_position == 1
    page = invited.client.get(f"/r/{invited.token(second_in_line)}?lang=en")
    assert "on the waiting list, number 1" in page.text
    assert "waiting list" not in invited.client.get(f"/r/{invited.token(first_in_line)}?lang=en").text


def test_after_the_deadline_answers_are_closed_and_a_post_changes_nothing(invited, sessions, at):
    person, silent = invited.people[:2]
    invited.answer(person, "yes")
    before = answers(sessions)
    at(DEADLINE + timedelta(minutes=1))

    page = invited.client.get(invited.path(person, "no") + "&lang=en")
    assert page.status_code == 200 and "<form" not in page.text
    assert "Answers are closed: the deadline has passed." in page.text
    assert "Your answer so far: Yes, I will attend" in page.text
    assert "We have no answer from you." in invited.client.get(f"/r/{invited.token(silent)}?lang=en").text

    refused = invited.answer(person, "no")
    assert refused.status_code == 409 and "Answers are closed" in refused.text
    assert invited.answer(silent, "yes").status_code == 409
    assert answers(sessions) == before


def test_a_cancelled_event_takes_no_more_answers(invited, sessions):
    person = invited.people[0]
    invited.answer(person, "maybe")
    before = answers(sessions)
    with sessions() as session:  # the cancellation's revision, as `herald send` stores it
        lifecycle.publish(session, EVENT, META.model_copy(update={"status": "cancelled"}), clock.now())
        session.commit()
    page = invited.client.get(f"/r/{invited.token(person)}?lang=ro")
    assert page.status_code == 200 and "Răspunsurile s-au închis: evenimentul este anulat." in page.text
    assert "<form" not in page.text
    assert invited.answer(person, "yes", lang="ro").status_code == 409
    assert answers(sessions) == before


def test_an_answer_that_is_none_of_the_three_is_refused_with_the_page(invited, sessions):
    person = invited.people[0]
    page = invited.client.get(f"/r/{invited.token(person)}?answer=perhaps&lang=en")
    assert page.status_code == 400 and checked(page.text) == [] and 'role="alert"' in page.text
    for answer in ("perhaps", "", "YES"):
        posted = invited.answer(person, answer)
        assert posted.status_code == 400 and "Please choose one of the answers below." in posted.text
    assert invited.client.post(f"/r/{invited.token(person)}",
                               data={"csrf": csrf_token(invited.settings.secret_key, invited.token(person))}
                               ).status_code == 400
    assert answers(sessions) == []


def test_refused_links_and_forms_change_nothing(invited, sessions, db_settings):
    person = invited.people[0]
    key = invited.link_keys[person]
    token = invited.token(person)
    payload, mac = token.split(".")
    signer = Signer.from_settings(db_settings)
    flipped = f"{payload}.{mac[:5]}{'A' if mac[5] != 'A' else 'B'}{mac[6:]}"
    broken = "Linkul nu funcționează"
    refused = {
        flipped: (403, broken),
        signer.sign("unsubscribe", person, key, invited.campaign_id): (403, broken),
        Signer("a key that was never ours").sign("rsvp", person, key, invited.campaign_id): (403, broken),
        token[:-3]: (400, broken),
        signer.sign("rsvp", 10**9, key, invited.campaign_id): (404, "Nu există"),  # nobody
        signer.sign("rsvp", person, key, None): (404, "Nu există"),  # no campaign
        signer.sign("rsvp", person, key, 10**6): (404, "Nu există"),  # no such campaign
    }
    with sessions() as session:  # a campaign whose event row does not exist: its invitation never went out
        unsent = ledger.create(session, item="events/eui-online-qa-session", message="invitation",
                                  segment="all-subscribers", edition=None, send_at=None, origin="cli", now=clock.now())
        news = ledger.create(session, item="newsletters/2027-01-uia-transfer-networks", message="newsletter",
                                segment="all-subscribers", edition=None, send_at=None, origin="cli", now=clock.now())
        session.commit()
    refused[signer.sign("rsvp", person, key, unsent.id)] = (404, "Nu există")
    refused[signer.sign("rsvp", person, key, news.id)] = (404, "Nu există")
    for bad, (status, romanian) in refused.items():
        for answer in (invited.client.get(f"/r/{bad}?answer=yes"), invited.answer(person, "yes", token=bad)):
            assert answer.status_code == status, bad
            assert romanian in answer.text and '<section lang="en">' in answer.text, "said in both languages"
    forged = invited.client.post(f"/r/{token}", data={"answer": "yes", "csrf": "0" * 32})
    assert forged.status_code == 403
    assert invited.client.post(f"/r/{token}", data={"answer": "yes"}).status_code == 403, "no proof, no change"
    assert answers(sessions) == []


def test_the_page_speaks_the_subscribers_language_and_shows_their_own_clock(invited, sessions):
    romanian = person_speaking(sessions, "ro", "Europe/Lisbon")
    page = invited.client.get(invited.path(romanian, "yes"))
    assert page.status_code == 200 and '<html lang="ro">' in page.text
    assert "<legend>Participați?</legend>" in page.text and "Da, particip" in page.text
    assert escape(ITEM.text("ro").front.title) in page.text
    assert "23 februarie 2027, 09:00–17:30" in page.text
    assert "La dumneavoastră: 23 februarie 2027, 07:00–15:30" in page.text, "Lisbon is two hours behind"
    switch = re.search(r'<a class="switch" href="([^"]+)" lang="en"', page.text).group(1)
    assert html.unescape(switch) == f"/r/{invited.token(romanian)}?lang=en&answer=yes", "the switch keeps the answer"
    english = invited.client.get(html.unescape(switch))
    assert '<html lang="en">' in english.text and "Your time: 23 February 2027, 07:00–15:30" in english.text
    assert checked(english.text) == ["yes"]
    done = invited.answer(romanian, "no", lang="ro")
    assert "Răspunsul dumneavoastră a fost înregistrat: Nu, nu pot participa" in done.text

    local = person_speaking(sessions, "en", "Europe/Bucharest")
    assert "Your time" not in invited.client.get(invited.path(local, "yes")).text, "same clock as the event's"


# ---- the public calendar ------------------------------------------------------------------------

def calendar_of(response) -> icalendar.Calendar:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    return icalendar.Calendar.from_ical(response.content)


def test_the_public_calendar_is_the_event_at_its_stored_revision(invited, sessions, db_settings):
    client = invited.client
    answer = client.get(f"/events/{SLUG}.ics")
    assert answer.headers["content-disposition"] == f'inline; filename="{SLUG}.ics"'
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    calendar = calendar_of(answer)
    event = calendar.walk("VEVENT")[0]
    assert str(calendar["METHOD"]) == "PUBLISH" and "ATTENDEE" not in event
    assert str(event["UID"]) == uid_for(SLUG, db_settings.org_email.rpartition("@")[2])
    assert event["SEQUENCE"] == 0 and str(event["STATUS"]) == "CONFIRMED"
    assert event["DTSTART"].dt == META.aware(META.start) and event["DTEND"].dt == META.aware(META.end)
    assert str(event["SUMMARY"]) == ITEM.text("ro").front.title, "Romanian unless asked"
    assert str(calendar_of(client.get(f"/events/{SLUG}.ics?lang=en")).walk("VEVENT")[0]["SUMMARY"]) \
        == ITEM.text("en").front.title

    moved = META.model_copy(update={"start": META.start + timedelta(hours=1), "end": META.end + timedelta(hours=1)})
    with sessions() as session:  # an update told invitees revision 1
        lifecycle.publish(session, EVENT, moved, clock.now())
        session.commit()
    assert calendar_of(client.get(f"/events/{SLUG}.ics")).walk("VEVENT")[0]["SEQUENCE"] == 1

    never_invited = calendar_of(client.get("/events/eui-online-qa-session.ics")).walk("VEVENT")[0]
    assert never_invited["SEQUENCE"] == 0


def test_a_cancelled_event_is_published_cancelled(db_settings, tmp_path):
    content = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content" / EVENT, content / EVENT)
    meta = content / EVENT / "meta.yaml"
    meta.write_text(meta.read_text(encoding="utf-8") + "status: cancelled\n", encoding="utf-8")
    client = TestClient(create_app(replace(db_settings, content_dir=content)))
    event = calendar_of(client.get(f"/events/{SLUG}.ics")).walk("VEVENT")[0]
    assert str(event["STATUS"]) == "CANCELLED"


def test_unknown_malformed_or_broken_events_are_a_bilingual_404(db_settings, tmp_path):
    content = tmp_path / "content"
    shutil.copytree(PROJECT_ROOT / "content" / EVENT, content / "events" / "broken")
    (content / "events" / "broken" / "meta.yaml").write_text("kind: event\nstart: tomorrow\n", encoding="utf-8")
    shutil.copytree(PROJECT_ROOT / "content" / "newsletters" / "2027-01-uia-transfer-networks",
                    content / "events" / "a-newsletter")
    client = TestClient(create_app(replace(db_settings, content_dir=content)))
    for slug in ("no-such-event", "Not_A_Slug", "a..b", "-dash", "broken", "a-newsletter", "%2E%2E"):
        answer = client.get(f"/events/{slug}.ics")
        assert answer.status_code == 404, slug
        assert "Nu există" in answer.text and "Nothing here" in answer.text
