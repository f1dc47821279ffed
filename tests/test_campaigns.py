"""Campaigns and the delivery ledger on SQLite and PostgreSQL: the state machine and every DB step of a send.

No Celery worker and no SMTP here: each function of worker/campaigns/ledger.py is driven directly, with an
explicit `now`, against a store of fictional subscribers (subscribers/sample.py) imported for real.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from foundation.settings import PROJECT_ROOT
from subscribers import store
from subscribers.importer import Options, import_csv
from subscribers.models import Subscriber
from subscribers.sample import write_csv
from subscribers.segments import members as segment_members
from subscribers.segments import segment_named, select_ids
from subscribers.topics import load_topics
from worker.authoring.content import find_items, load_item
from worker.campaigns import ledger
from worker.campaigns.ledger import Batch, StateError
from worker.campaigns.models import CAMPAIGN_STATES, Campaign, Delivery
from worker.rendering.render import MESSAGES

NOW = datetime(2027, 1, 15, 9, 30, tzinfo=UTC)
CONTENT = PROJECT_ROOT / "content"
LEASE = timedelta(seconds=120)
ITEM = "newsletters/2027-01-uia-transfer-networks"


# ---- a store of a few dozen people -----------------------------------------------------------------

@dataclass(frozen=True)
class People:
    members: list[int]  # the mailable ones, in id order: whom `all-subscribers` reaches
    pending: list[int]
    unsubscribed: int
    suppressed: int  # confirmed in the table, but its address is on the suppression list
    erased_email: str  # no row any more, only its hash in suppressions


@pytest.fixture
def people(sessions, db_settings, tmp_path: Path) -> People:
    path = tmp_path / "people.csv"
    write_csv(path, 40)
    import_csv(sessions, path, load_topics(CONTENT), db_settings.secret_key,
               Options(now=NOW - timedelta(days=30), consent_source="sample registration form"))
    key = db_settings.secret_key
    with sessions.begin() as session:
        everyone = list(session.scalars(select(Subscriber).order_by(Subscriber.id)))
        assert len(everyone) == 40
        for subscriber in everyone[3:6]:  # a few who never confirmed
            subscriber.status = "pending"
        everyone[7].status, everyone[7].unsubscribed_at = "unsubscribed", NOW - timedelta(days=2)
        store.suppress(session, key, everyone[9].email, "complained", NOW - timedelta(days=1))
        erased_email = everyone[11].email
        assert store.erase(session, key, erased_email, NOW - timedelta(days=1))
    with sessions() as session:
        rows = session.execute(select(Subscriber.id, Subscriber.status).order_by(Subscriber.id)).all()
        pending = [id_ for id_, status in rows if status == "pending"]
        unsubscribed = everyone[7].id
        suppressed = everyone[9].id
        members = [id_ for id_, status in rows if status == "confirmed" and id_ != suppressed]
    assert len(pending) >= 3 and len(members) >= 25
    return People(members, pending, unsubscribed, suppressed, erased_email)


def everyone_segment():
    return segment_named(CONTENT, "all-subscribers")


def new_campaign(session, *, send_at: datetime | None = None, now: datetime = NOW, segment: str = "all-subscribers",
                 item: str = ITEM) -> Campaign:
    campaign = ledger.create(session, item=item, message="newsletter", segment=segment, edition=None,
                                send_at=send_at, origin="cli", now=now)
    session.commit()
    return campaign


def fan_out_all(session, campaign: Campaign, size: int = 1000) -> list[int]:
    """Every page, as tasks.start does it: the cursor is reread from the database after each page."""
    ids = []
    while not campaign.fanout_done:
        ids += ledger.fan_out_page(session, campaign, segment_members(everyone_segment()), NOW, size=size)
        session.refresh(campaign)
    return ids


def ledger_rows(session, campaign_id: int) -> dict[int, Delivery]:
    session.expire_all()
    return {row.subscriber_id: row for row in
            session.scalars(select(Delivery).where(Delivery.campaign_id == campaign_id))}


def whole(campaign_id: int, ids: list[int]) -> Batch:
    return Batch(campaign_id, ids[0], ids[-1])


# ---- the state machine --------------------------------------------------------------------------------

ALLOWED = {
    ("draft", "scheduled"), ("draft", "sending"), ("draft", "cancelled"),
    ("scheduled", "sending"), ("scheduled", "missed"), ("scheduled", "cancelled"),
    ("sending", "paused"), ("sending", "sent"), ("sending", "failed"), ("sending", "cancelled"),
    ("paused", "sending"), ("paused", "cancelled"),
}
FINAL = {"sent", "cancelled", "failed", "missed"}


def test_the_transition_table_is_the_documented_diagram():
    assert {(origin, to) for origin, targets in ledger.TRANSITIONS.items() for to in targets} == ALLOWED
    assert ledger.FINAL_STATES == FINAL
    assert set(CAMPAIGN_STATES) == {origin for origin, _ in ALLOWED} | FINAL


@pytest.mark.parametrize(("origin", "to"), sorted(ALLOWED))
def test_an_allowed_move_happens_and_stamps_the_campaign(origin, to):
    campaign = Campaign(id=7, state=origin, reason="", started_at=None, finished_at=None, updated_at=NOW)
    later = NOW + timedelta(minutes=5)
    ledger.move(campaign, to, later, "why")
    assert (campaign.state, campaign.reason, campaign.updated_at) == (to, "why", later)
    assert campaign.started_at == (later if to == "sending" else None)
    assert campaign.finished_at == (later if to in FINAL else None)


def test_resuming_keeps_the_first_start_time():
    campaign = Campaign(id=7, state="draft", reason="", started_at=None, finished_at=None, updated_at=NOW)
    ledger.move(campaign, "sending", NOW)
    ledger.move(campaign, "paused", NOW + timedelta(hours=1), "paused by the operator")
    ledger.move(campaign, "sending", NOW + timedelta(hours=2))
    assert (campaign.started_at, campaign.reason) == (NOW, "")


@pytest.mark.parametrize(("origin", "to"), sorted(set(itertools.product(CAMPAIGN_STATES, repeat=2)) - ALLOWED))
def test_a_forbidden_move_raises_and_names_the_moves_that_are_allowed(origin, to):
    campaign = Campaign(id=7, state=origin, reason="before", started_at=None, finished_at=None, updated_at=NOW)
    with pytest.raises(StateError) as caught:
        ledger.move(campaign, to, NOW + timedelta(minutes=5))
    allowed = sorted(target for start, target in ALLOWED if start == origin)
    if origin in FINAL:
        assert not allowed
        verb = {"paused": "pause", "sending": "resume", "cancelled": "cancel"}.get(to, f"move to {to}")
        assert str(caught.value) == f"campaign 7 is {origin}, so it is over; there is nothing to {verb}"
    else:
        assert str(caught.value) == f"campaign 7 is {origin}; it can move to {', '.join(allowed)}, not {to}"
    assert (campaign.state, campaign.reason, campaign.updated_at) == (origin, "before", NOW)  # unchanged


# ---- create, sync, start ---------------------------------------------------------------------------

def test_create_schedules_a_future_campaign_and_starts_one_without_a_time(sessions):
    with sessions() as session:
        later = new_campaign(session, send_at=NOW + timedelta(days=1))
        at_once = new_campaign(session)
        overdue = new_campaign(session, send_at=NOW - timedelta(minutes=1))
    with sessions() as session:
        later, at_once, overdue = (session.get(Campaign, c.id) for c in (later, at_once, overdue))
        assert (later.state, later.send_at, later.started_at) == ("scheduled", NOW + timedelta(days=1), None)
        assert (at_once.state, at_once.send_at, at_once.started_at) == ("sending", None, NOW)
        assert (overdue.state, overdue.started_at) == ("sending", NOW)
        assert (at_once.item, at_once.message, at_once.segment, at_once.origin) == (
            ITEM, "newsletter", "all-subscribers", "cli")
        assert (at_once.fanout_cursor, at_once.fanout_done, at_once.finished_at) == (0, False, None)


def shipped():
    return [load_item(folder) for folder in find_items(CONTENT)]


def test_sync_schedules_one_campaign_per_item_with_a_send_at_and_is_idempotent(sessions):
    items = shipped()
    with_time = [item for item in items if item.meta.send_at is not None]
    assert with_time
    with sessions() as session:
        created = ledger.sync_schedules(session, items, CONTENT, NOW)
        session.commit()
        assert len(created) == len(with_time)
    with sessions() as session:
        stored = {c.schedule_key: c for c in session.scalars(select(Campaign))}
        assert len(stored) == len(with_time)
        for item in with_time:
            folder = item.path.relative_to(CONTENT).as_posix()
            message = MESSAGES[item.kind][0]
            campaign = stored[f"{folder}:{message}"]
            assert (campaign.item, campaign.message, campaign.segment, campaign.state, campaign.origin) == (
                folder, message, item.meta.audience, "scheduled", "schedule")
            assert campaign.send_at == item.meta.send_at.replace(tzinfo=ZoneInfo(item.meta.timezone))
        # The editor wrote 10:00 in Bucharest, in winter: 08:00 UTC.
        assert stored[f"{ITEM}:newsletter"].send_at == datetime(2027, 1, 14, 8, 0, tzinfo=UTC)
    with sessions() as session:
        assert ledger.sync_schedules(session, items, CONTENT, NOW + timedelta(minutes=1)) == []
        session.commit()
        assert session.scalar(select(func.count()).select_from(Campaign)) == len(with_time)


def test_a_moved_send_at_moves_a_scheduled_campaign_but_not_a_started_one(sessions):
    items = shipped()
    newsletter = next(item for item in items if item.path == CONTENT / ITEM)
    other = next(item for item in items if item.meta.send_at is not None and item is not newsletter)
    with sessions() as session:
        ledger.sync_schedules(session, items, CONTENT, NOW)
        session.commit()

    def moved(item, hours: int):
        return replace(item, meta=item.meta.model_copy(update={"send_at": item.meta.send_at + timedelta(hours=hours)}))

    with sessions() as session:
        [changed] = ledger.sync_schedules(session, [moved(newsletter, 24), other], CONTENT, NOW)
        session.commit()
        assert changed.schedule_key == f"{ITEM}:newsletter"
    with sessions() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.schedule_key == f"{ITEM}:newsletter"))
        assert (campaign.state, campaign.send_at) == ("scheduled", datetime(2027, 1, 15, 8, 0, tzinfo=UTC))
        ledger.move(campaign, "sending", NOW)
        session.commit()
    with sessions() as session:
        assert ledger.sync_schedules(session, [moved(newsletter, 48)], CONTENT, NOW) == []
        session.commit()
    with sessions() as session:
        campaign = session.scalar(select(Campaign).where(Campaign.schedule_key == f"{ITEM}:newsletter"))
        assert (campaign.state, campaign.send_at) == ("sending", datetime(2027, 1, 15, 8, 0, tzinfo=UTC))
        assert session.scalar(select(func.count()).select_from(Campaign)) == len(
            [item for item in items if item.meta.send_at is not None])


def test_start_due_starts_within_the_grace_window_and_marks_the_too_late_missed(sessions):
    bucharest = ZoneInfo("Europe/Bucharest")
    with sessions() as session:
        before = NOW - timedelta(days=1)
        recent = new_campaign(session, send_at=NOW - timedelta(hours=1), now=before)
        late = new_campaign(session, send_at=NOW - timedelta(hours=7), now=before)
        # The same 7 h, written in the item's zone (as `herald send --at` and sync give it): the reason is in UTC.
        late_local = new_campaign(session, send_at=datetime(2027, 1, 15, 4, 30, tzinfo=bucharest), now=before)
        future = new_campaign(session, send_at=NOW + timedelta(minutes=1), now=before)
        assert {c.state for c in (recent, late, late_local, future)} == {"scheduled"}
        started, missed = ledger.start_due(session, NOW, timedelta(hours=6))
        session.commit()
        assert (started, sorted(missed)) == ([recent.id], sorted([late.id, late_local.id]))
    with sessions() as session:
        recent, late, late_local, future = (session.get(Campaign, c.id) for c in (recent, late, late_local, future))
        assert (recent.state, recent.started_at, recent.reason) == ("sending", NOW, "")
        for campaign in (late, late_local):
            assert (campaign.state, campaign.finished_at, campaign.started_at) == ("missed", NOW, None)
            assert campaign.reason == ("due 2027-01-15 02:30 UTC, 7.0 h late; past the 6.0 h grace window, "
                                       "so it was not sent")
        assert (future.state, future.started_at) == ("scheduled", None)
        assert ledger.start_due(session, NOW, timedelta(hours=6)) == ([], [])


# ---- fan-out -------------------------------------------------------------------------------------------

def test_fan_out_pages_through_exactly_the_mailable_members_once(sessions, people):
    segment = everyone_segment()
    with sessions() as session:
        expected = list(session.scalars(select_ids(segment)))
        assert expected == people.members
        assert not set(expected) & {*people.pending, people.unsubscribed, people.suppressed}
        assert store.find(session, people.erased_email) is None
        campaign = new_campaign(session)
        pages = []
        while True:
            page = ledger.fan_out_page(session, campaign, segment_members(segment), NOW + timedelta(seconds=len(pages)), size=7)
            session.refresh(campaign)
            pages.append(page)
            if campaign.fanout_done:
                break
            assert len(page) == 7 and campaign.fanout_cursor == page[-1]
        assert [id_ for page in pages for id_ in page] == expected
        assert 0 < len(pages[-1]) < 7 or pages[-1] == []
        assert campaign.fanout_seen_at == NOW + timedelta(seconds=len(pages) - 1)
        rows = ledger_rows(session, campaign.id)
        assert sorted(rows) == expected
        assert {(row.state, row.attempts, row.claim, row.error) for row in rows.values()} == {("pending", 0, None, "")}

        # A fan-out restarted from the start (a crash before its cursor was saved) adds no one twice.
        session.execute(update(Campaign).where(Campaign.id == campaign.id).values(fanout_cursor=0, fanout_done=False))
        session.commit()
        session.refresh(campaign)
        again = fan_out_all(session, campaign, size=7)
        assert again == expected
        assert session.scalar(select(func.count()).select_from(Delivery)
                              .where(Delivery.campaign_id == campaign.id)) == len(expected)
        assert campaign.fanout_done and campaign.fanout_cursor == expected[-1]

        session.add(Delivery(campaign_id=campaign.id, subscriber_id=expected[0], state="pending", attempts=0, error=""))
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()


def test_fan_out_is_done_only_after_a_short_page(sessions, people):
    with sessions() as session:
        campaign = new_campaign(session)
        size = len(people.members)  # one exactly full page: only the next, empty one says it is over
        assert ledger.fan_out_page(session, campaign, segment_members(everyone_segment()), NOW, size=size) == people.members
        session.refresh(campaign)
        assert not campaign.fanout_done
        assert ledger.fan_out_page(session, campaign, segment_members(everyone_segment()), NOW, size=size) == []
        session.refresh(campaign)
        assert campaign.fanout_done and campaign.fanout_cursor == people.members[-1]


def test_a_segment_fans_out_to_its_own_mailable_members_only(sessions, people):
    segment = segment_named(CONTENT, "partners-abroad")
    with sessions() as session:
        abroad = {id_ for id_, country in session.execute(select(Subscriber.id, Subscriber.country))
                  if country != "RO"}
        expected = list(session.scalars(select_ids(segment)))
        assert expected == [id_ for id_ in people.members if id_ in abroad]
        campaign = new_campaign(session, segment="partners-abroad")
        ids = []
        while not campaign.fanout_done:
            ids += ledger.fan_out_page(session, campaign, segment_members(segment), NOW, size=3)
            session.refresh(campaign)
        assert ids == expected and sorted(ledger_rows(session, campaign.id)) == expected


def test_batches_cut_ids_into_ranges_of_the_given_size():
    ids = [2, 3, 5, 8, 13, 21, 34]
    assert list(ledger.batches(9, ids, 3)) == [Batch(9, 2, 5), Batch(9, 8, 21), Batch(9, 34, 34)]
    assert list(ledger.batches(9, ids, 7)) == [Batch(9, 2, 34)]
    assert list(ledger.batches(9, ids, 100)) == [Batch(9, 2, 34)]
    assert list(ledger.batches(9, [], 3)) == []


# ---- claiming a batch --------------------------------------------------------------------------------

def test_two_claims_over_overlapping_ranges_never_share_a_row(sessions, people):
    members = people.members
    with sessions() as session:
        campaign = new_campaign(session)
        fan_out_all(session, campaign)
    with sessions() as first_session, sessions() as second_session:
        first_token, first = ledger.claim(first_session, Batch(campaign.id, members[0], members[20]), NOW, LEASE)
        second_token, second = ledger.claim(second_session, Batch(campaign.id, members[10], members[-1]), NOW, LEASE)
    assert first_token != second_token
    assert [row.subscriber_id for row in first] == members[:21]
    assert [row.subscriber_id for row in second] == members[21:]
    assert not {row.delivery_id for row in first} & {row.delivery_id for row in second}
    with sessions() as session:
        rows = ledger_rows(session, campaign.id)
        assert {rows[row.subscriber_id].claim for row in first} == {first_token}
        assert {rows[row.subscriber_id].claim for row in second} == {second_token}
        assert {row.state for row in rows.values()} == {"sending"}
        assert {row.lease_until for row in rows.values()} == {NOW + LEASE}


def test_a_claimed_row_waits_for_its_lease_to_run_out(sessions, people):
    with sessions() as session:
        campaign = new_campaign(session)
        fan_out_all(session, campaign)
        batch = whole(campaign.id, people.members)
        token, rows = ledger.claim(session, batch, NOW, LEASE)
        assert len(rows) == len(people.members)
        assert ledger.claim(session, batch, NOW + LEASE - timedelta(seconds=1), LEASE)[1] == []
        assert ledger.claim(session, batch, NOW + LEASE, LEASE)[1] == []  # runs out strictly after
        # A worker died holding them: once the lease is over, another batch takes them.
        later = NOW + LEASE + timedelta(seconds=1)
        new_token, taken = ledger.claim(session, batch, later, LEASE)
        assert [row.delivery_id for row in taken] == [row.delivery_id for row in rows]
        # The first holder lost them: its late outcome is not recorded.
        assert not ledger.mark_sent(session, rows[0].delivery_id, token, later)
        assert ledger.mark_sent(session, rows[0].delivery_id, new_token, later)
        assert ledger.extend_lease(session, new_token, later, LEASE) == len(rows) - 1
        assert ledger_rows(session, campaign.id)[rows[1].subscriber_id].lease_until == later + LEASE


def test_release_hands_rows_back_as_pending(sessions, people):
    with sessions() as session:
        campaign = new_campaign(session)
        fan_out_all(session, campaign)
        batch = whole(campaign.id, people.members)
        token, rows = ledger.claim(session, batch, NOW, LEASE)
        assert ledger.mark_sent(session, rows[0].delivery_id, token, NOW)
        ledger.release(session, token)
        states = ledger_rows(session, campaign.id)
        assert states[rows[0].subscriber_id].state == "sent"
        assert {(row.state, row.claim, row.lease_until) for sid, row in states.items()
                if sid != rows[0].subscriber_id} == {("pending", None, None)}
        _, again = ledger.claim(session, batch, NOW, LEASE)  # no need to wait for the lease
        assert [row.subscriber_id for row in again] == people.members[1:]


def test_a_claim_says_who_stopped_being_mailable_after_the_fan_out(sessions, db_settings, people):
    gone, blocked = people.members[2], people.members[5]
    with sessions() as session:
        campaign = new_campaign(session)
        fan_out_all(session, campaign)
        person = session.get(Subscriber, gone)
        person.status, person.unsubscribed_at = "unsubscribed", NOW
        store.suppress(session, db_settings.secret_key, session.get(Subscriber, blocked).email, "complained", NOW)
        session.commit()
        _, rows = ledger.claim(session, whole(campaign.id, people.members), NOW, LEASE)
    by_id = {row.subscriber_id: row for row in rows}
    assert sorted(by_id) == people.members
    assert {sid for sid, row in by_id.items() if not row.mailable} == {gone, blocked}
    with sessions() as session:
        subscriber = session.get(Subscriber, people.members[0])
        row = by_id[subscriber.id]
        assert (row.email, row.name, row.language, row.timezone) == (
            subscriber.email, subscriber.name, subscriber.language, subscriber.timezone)


# ---- outcomes -------------------------------------------------------------------------------------------

def test_sent_temporary_and_failed_outcomes(sessions, people):
    wait = timedelta(minutes=5)
    with sessions() as session:
        campaign = new_campaign(session)
        fan_out_all(session, campaign)
        batch = whole(campaign.id, people.members[:2])
        token, (sent, flaky) = ledger.claim(session, batch, NOW, LEASE)
        assert ledger.mark_sent(session, sent.delivery_id, token, NOW)
        assert ledger.mark_temporary(session, flaky.delivery_id, token, NOW, "451 4.3.0 try again later",
                                        ledger.attempts_of(session, flaky.delivery_id), 3, wait) == "retry"
        rows = ledger_rows(session, campaign.id)
        row = rows[sent.subscriber_id]
        assert (row.state, row.attempts, row.sent_at, row.claim, row.lease_until, row.error) == (
            "sent", 1, NOW, None, None, "")
        row = rows[flaky.subscriber_id]
        assert (row.state, row.attempts, row.next_attempt_at, row.claim, row.error) == (
            "retry", 1, NOW + wait, None, "451 4.3.0 try again later")

        # Not before its time; then again, and given up at the third attempt.
        assert ledger.claim(session, batch, NOW + wait - timedelta(seconds=1), LEASE)[1] == []
        at = NOW + wait
        for attempt, expected in ((2, "retry"), (3, "failed")):
            token, [again] = ledger.claim(session, batch, at, LEASE)
            assert again.delivery_id == flaky.delivery_id
            assert ledger.mark_temporary(session, again.delivery_id, token, at, f"421 attempt {attempt}",
                                            ledger.attempts_of(session, again.delivery_id), 3, wait) == expected
            at += wait
        row = ledger_rows(session, campaign.id)[flaky.subscriber_id]
        assert (row.state, row.attempts, row.next_attempt_at, row.error) == ("failed", 3, None, "421 attempt 3")
        assert ledger.claim(session, batch, NOW + timedelta(days=1), LEASE)[1] == []


@hypothesis_settings(max_examples=300, deadline=None)
@given(attempt=st.integers(1, 40), base=st.floats(0.001, 3600), cap=st.floats(0.001, 86400),
       seed=st.integers(0, 2**32))
def test_backoff_is_jittered_between_half_and_all_of_the_capped_exponential(attempt, base, cap, seed):
    ceiling = min(cap, base * 2 ** (attempt - 1))
    wait = ledger.backoff(attempt, base, cap, random.Random(seed)).total_seconds()
    assert 0.5 * ceiling - 1e-6 <= wait <= ceiling + 1e-6


def test_backoff_doubles_until_the_cap():
    class Top:
        @staticmethod
        def uniform(low: float, high: float) -> float:
            return high

    assert [ledger.backoff(n, 60, 600, Top()).total_seconds() for n in range(1, 7)] == [60, 120, 240, 480, 600, 600]


def test_a_hard_bounce_at_threshold_one_marks_the_person_bounced_and_suppressed(sessions, db_settings, people):
    key = db_settings.secret_key
    with sessions() as session:
        campaign = new_campaign(session)
        fan_out_all(session, campaign)
        token, (row, *_) = ledger.claim(session, whole(campaign.id, people.members), NOW, LEASE)
        email = row.email
        assert not store.is_suppressed(session, key, email)
        assert ledger.mark_bounced(session, row.delivery_id, token, row.subscriber_id, "550 5.1.1 no such user",
                                      NOW, 1, key)
    with sessions() as session:
        subscriber = session.get(Subscriber, row.subscriber_id)
        assert (subscriber.status, subscriber.bounced_at) == ("bounced", NOW)
        assert store.is_suppressed(session, key, email)
        delivery = ledger_rows(session, campaign.id)[row.subscriber_id]
        assert (delivery.state, delivery.attempts, delivery.error, delivery.claim) == (
            "bounced", 1, "550 5.1.1 no such user", None)
        assert row.subscriber_id not in set(session.scalars(select_ids(everyone_segment())))


def test_at_threshold_two_the_first_bounce_does_not_suppress_the_second_does(sessions, db_settings, people):
    key = db_settings.secret_key
    person = people.members[0]
    outcomes = []
    with sessions() as session:
        for _ in range(2):
            campaign = new_campaign(session)
            fan_out_all(session, campaign)
            token, [row] = ledger.claim(session, Batch(campaign.id, person, person), NOW, LEASE)
            outcomes.append(ledger.mark_bounced(session, row.delivery_id, token, person, "550 unknown", NOW, 2, key))
            session.expire_all()
            subscriber = session.get(Subscriber, person)
            if len(outcomes) == 1:
                assert subscriber.status == "confirmed" and not store.is_suppressed(session, key, subscriber.email)
    assert outcomes == [False, True]
    with sessions() as session:
        subscriber = session.get(Subscriber, person)
        assert subscriber.status == "bounced" and store.is_suppressed(session, key, subscriber.email)


# ---- sweeping, finishing, counting -------------------------------------------------------------------

def test_requeue_turns_due_retries_and_expired_leases_back_to_pending(sessions, people):
    members = people.members
    with sessions() as session:
        campaign = new_campaign(session)
        fan_out_all(session, campaign)
        token, rows = ledger.claim(session, whole(campaign.id, members), NOW, LEASE)
        sent, soon, later, *held = rows
        ledger.mark_sent(session, sent.delivery_id, token, NOW)
        ledger.mark_temporary(session, soon.delivery_id, token, NOW, "451", 0, 8, timedelta(seconds=60))
        ledger.mark_temporary(session, later.delivery_id, token, NOW, "451", 0, 8, timedelta(hours=1))

        def states() -> dict[int, str]:
            return {sid: row.state for sid, row in ledger_rows(session, campaign.id).items()}

        assert ledger.requeue(session, campaign.id, NOW + timedelta(seconds=59)) == 0
        assert ledger.requeue(session, campaign.id, NOW + timedelta(seconds=90)) == 1
        now = states()
        assert (now[sent.subscriber_id], now[soon.subscriber_id], now[later.subscriber_id]) == ("sent", "pending", "retry")
        assert {now[row.subscriber_id] for row in held} == {"sending"}

        assert ledger.requeue(session, campaign.id, NOW + LEASE + timedelta(seconds=1)) == len(held)
        rows_now = ledger_rows(session, campaign.id)
        assert {(rows_now[row.subscriber_id].state, rows_now[row.subscriber_id].claim) for row in held} == {
            ("pending", None)}
        assert rows_now[later.subscriber_id].state == "retry"
        assert ledger.requeue(session, campaign.id, NOW + timedelta(hours=1)) == 1
        assert Counter(states().values()) == {"sent": 1, "pending": len(members) - 1}
        # Only this campaign's rows: another campaign's expired lease stays for its own sweep.
        other = new_campaign(session)
        fan_out_all(session, other)
        ledger.claim(session, whole(other.id, members), NOW, LEASE)
        assert ledger.requeue(session, campaign.id, NOW + timedelta(days=1)) == 0
        assert set(ledger.pending_batches(session, campaign.id, 10)) == set(
            ledger.batches(campaign.id, members[1:], 10))


def test_finish_if_done_needs_a_sending_campaign_a_finished_fan_out_and_nothing_left(sessions, people):
    members = people.members
    with sessions() as session:
        campaign = new_campaign(session)
        assert not ledger.finish_if_done(session, campaign.id, NOW)  # fan-out not begun: nothing unfinished yet
        ledger.fan_out_page(session, campaign, segment_members(everyone_segment()), NOW, size=len(members))
        session.refresh(campaign)
        token, rows = ledger.claim(session, whole(campaign.id, members), NOW, LEASE)
        for row in rows:
            ledger.mark_sent(session, row.delivery_id, token, NOW)
        assert not campaign.fanout_done
        assert not ledger.finish_if_done(session, campaign.id, NOW)  # a next page may still come
        fan_out_all(session, campaign)
        assert campaign.fanout_done

        paused = new_campaign(session)
        fan_out_all(session, paused)
        token, rows = ledger.claim(session, whole(paused.id, members), NOW, LEASE)
        for row in rows[:-1]:
            ledger.mark_sent(session, row.delivery_id, token, NOW)
        assert not ledger.finish_if_done(session, paused.id, NOW)  # one still sending
        ledger.mark_temporary(session, rows[-1].delivery_id, token, NOW, "451", 0, 3, timedelta(minutes=1))
        assert not ledger.finish_if_done(session, paused.id, NOW)  # one retry to come
        assert ledger.pause(session, paused.id, NOW, "paused by the operator")
        requeued = ledger.requeue(session, paused.id, NOW + timedelta(minutes=2))
        assert requeued == 1
        token, [last] = ledger.claim(session, whole(paused.id, members), NOW + timedelta(minutes=2), LEASE)
        ledger.mark_temporary(session, last.delivery_id, token, NOW, "451", 2, 3, timedelta(minutes=1))
        assert not ledger.finish_if_done(session, paused.id, NOW)  # nothing left, but paused is not sending

        later = NOW + timedelta(minutes=3)
        assert ledger.finish_if_done(session, campaign.id, later)
        assert not ledger.finish_if_done(session, campaign.id, later)  # once
    with sessions() as session:
        done = session.get(Campaign, campaign.id)
        assert (done.state, done.finished_at, done.updated_at) == ("sent", later, later)
        assert ledger.state_of(session, paused.id) == "paused"
        assert not ledger.pause(session, campaign.id, later, "too late")  # only a sending campaign pauses
        assert ledger.sending_campaigns(session) == []


def test_counts_match_the_ledger(sessions, db_settings, people):
    members = people.members
    with sessions() as session:
        campaign = new_campaign(session)
        assert ledger.counts(session, campaign.id) == {
            "pending": 0, "sending": 0, "sent": 0, "retry": 0, "failed": 0, "bounced": 0, "suppressed": 0,
            "targeted": 0}
        fan_out_all(session, campaign)
        token, rows = ledger.claim(session, Batch(campaign.id, members[0], members[14]), NOW, LEASE)
        for row in rows[:6]:
            ledger.mark_sent(session, row.delivery_id, token, NOW)
        ledger.mark_temporary(session, rows[6].delivery_id, token, NOW, "451", 0, 8, timedelta(minutes=1))
        ledger.mark_temporary(session, rows[7].delivery_id, token, NOW, "451", 7, 8, timedelta(minutes=1))
        ledger.mark_bounced(session, rows[8].delivery_id, token, rows[8].subscriber_id, "550", NOW, 1,
                               db_settings.secret_key)
        ledger.mark_suppressed(session, rows[9].delivery_id, token)
        counted = ledger.counts(session, campaign.id)
        actual = Counter(session.scalars(select(Delivery.state).where(Delivery.campaign_id == campaign.id)))
        assert counted == {state: actual.get(state, 0) for state in
                           ("pending", "sending", "sent", "retry", "failed", "bounced", "suppressed")} | {
            "targeted": len(members)}
        assert counted == {"pending": len(members) - 15, "sending": 5, "sent": 6, "retry": 1, "failed": 1,
                           "bounced": 1, "suppressed": 1, "targeted": len(members)}
