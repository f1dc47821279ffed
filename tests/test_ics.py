"""worker/events/ics.py read back by two independent parsers: Python's icalendar and Mozilla's ical.js.

ical.js (pinned in tests/package.json, run by tests/ical_parse.mjs) knows no time zones but UTC,
so the start and end it reports come from the VTIMEZONE Herald wrote. icalendar is asked twice:
through the TZID (zoneinfo) and through the VTIMEZONE itself (`to_tz(lookup_tzid=False)`). All
of them must give the instant zoneinfo gives for the editor's wall-clock time.

Every calendar the module builds goes to one node process (JSON lines), so the suite stays fast.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from needs import unavailable

from foundation.settings import PROJECT_ROOT
from worker.authoring.content import find_items, load_item
from worker.events.ics import (
    LINE_OCTETS,
    CalendarTemplate,
    EventTimes,
    calendar,
    content_type,
    escape_text,
    fold,
    uid_for,
    vtimezone_lines,
)

TESTS_DIR = Path(__file__).resolve().parent
ICAL_PARSE = TESTS_DIR / "ical_parse.mjs"
SETUP_HINT = "run `python3 bootstrap.py test`, which runs `npm ci` in tests/"

EU_ZONES = ("Europe/Bucharest", "Europe/Brussels", "Europe/Lisbon", "Europe/Vilnius")
DTSTAMP = datetime(2027, 1, 10, 8, 30, 15, tzinfo=UTC)
ORGANISER = ("Primăria Municipiului Botoșani", "primaria@primariabt.ro")
RECIPIENT = ("Ioana Ștefănescu", "ioana.stefanescu@example.ro")
UID = uid_for("di4c-partners-meeting-botosani", "herald.example")

ROMANIAN = ("Reuniunea partenerilor rețelei URBACT la Botoșani: înregistrarea participanților, "
            "cuvânt de bun venit, atelier despre soluții digitale pentru orașele mici și mijlocii; "
            "ȘTIINȚĂ, ÎNVĂȚĂMÂNT, ĂȘTEPTĂRI — pașii următori și încheierea reuniunii. ") * 4
ESCAPES = "Virgule, punct și virgulă; backslash \\ și \\n literal\nlinie nouă\r\nCRLF\rCR, gata;"


def _local(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M")


def expected_utc(local: datetime, zone: str) -> datetime:
    """What the editor's wall-clock time means (zoneinfo, fold=0: RFC 5545's reading of gaps and overlaps)."""
    return local.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _request(times: EventTimes, **overrides) -> bytes:
    fields = {"method": "REQUEST", "uid": UID, "sequence": 0, "dtstamp": DTSTAMP, "organiser": ORGANISER,
              "attendee": RECIPIENT, "summary": "Reuniunea partenerilor DI4C", "description": ROMANIAN[:200],
              "location": "Sediul Primăriei, Piața Revoluției nr. 1, Botoșani", "url": "https://www.primariabt.ro/"}
    fields.update(overrides)
    return calendar(times, **fields)


# ---- the cases -------------------------------------------------------------------------------

TIME_CASES: list[tuple[str, str, str, str]] = []  # (id, zone, local start, local end)
for _zone in EU_ZONES:
    _city = _zone.split("/")[1].lower()
    TIME_CASES += [
        (f"{_city}-spring-straddle", _zone, "2027-03-27 22:00", "2027-03-28 10:00"),
        (f"{_city}-autumn-straddle", _zone, "2027-10-30 22:00", "2027-10-31 10:00"),
        (f"{_city}-summer", _zone, "2027-06-15 10:00", "2027-06-15 12:00"),
        (f"{_city}-winter", _zone, "2027-01-27 10:00", "2027-01-27 11:30"),
        (f"{_city}-new-year", _zone, "2027-12-31 20:00", "2028-01-01 02:00"),
        (f"{_city}-late-2029", _zone, "2029-11-20 18:00", "2029-11-20 20:00"),
    ]
TIME_CASES += [
    # Wall-clock times a zone skips (spring) or repeats (autumn): RFC 5545 3.3.5 reads them with
    # the offset before the change, the first of the two, as zoneinfo's fold=0 does.
    ("bucharest-skipped-hour", "Europe/Bucharest", "2027-03-28 03:30", "2027-03-28 05:00"),
    ("bucharest-repeated-hour", "Europe/Bucharest", "2027-10-31 03:30", "2027-10-31 06:00"),
    ("brussels-skipped-hour", "Europe/Brussels", "2027-03-28 02:30", "2027-03-28 04:00"),
    ("brussels-repeated-hour", "Europe/Brussels", "2027-10-31 02:30", "2027-10-31 05:00"),
    ("lisbon-skipped-hour", "Europe/Lisbon", "2027-03-28 01:30", "2027-03-28 03:00"),
    ("lisbon-repeated-hour", "Europe/Lisbon", "2027-10-31 01:30", "2027-10-31 03:00"),
    ("vilnius-at-the-change", "Europe/Vilnius", "2027-03-28 04:00", "2027-10-31 04:00"),
    # Other shapes of rule: nth weekday, southern hemisphere, no DST, a rule that ended
    # (UNTIL), a standard offset that changed (no DST), DST below zero.
    ("new-york-2nd-sunday", "America/New_York", "2027-03-13 20:00", "2027-03-14 09:00"),
    ("sydney-southern", "Australia/Sydney", "2027-04-03 20:00", "2027-04-04 09:00"),
    ("istanbul-no-dst", "Europe/Istanbul", "2027-03-28 10:00", "2027-03-28 12:00"),
    ("sao-paulo-rule-ended", "America/Sao_Paulo", "2019-02-16 20:00", "2019-06-01 10:00"),
    ("moscow-offset-changed", "Europe/Moscow", "2014-06-01 10:00", "2014-12-01 10:00"),
    ("dublin-negative-dst", "Europe/Dublin", "2027-03-27 22:00", "2027-10-31 10:00"),
]


def _shipped_events() -> list[tuple[str, str, str, str]]:
    cases = []
    for folder in find_items(PROJECT_ROOT / "content" / "events"):
        meta = load_item(folder).meta
        cases.append((f"shipped-{folder.name}", meta.timezone,
                      f"{meta.start:%Y-%m-%d %H:%M}", f"{meta.end:%Y-%m-%d %H:%M}"))
    return cases


def _sampled(count: int = 80, seed: int = 5545) -> list[tuple[str, str, str, str]]:
    """Ordinary and odd times alike: any minute of 2026-2031, lasting up to four days."""
    rng = random.Random(seed)
    zones = (*EU_ZONES, "America/New_York", "Australia/Sydney", "Europe/Istanbul")
    cases = []
    for number in range(count):
        start = datetime(2026, 1, 1) + timedelta(minutes=rng.randrange(6 * 365 * 24 * 60))
        end = start + timedelta(minutes=rng.randrange(30, 4 * 24 * 60))
        cases.append((f"sample-{number}", rng.choice(zones), f"{start:%Y-%m-%d %H:%M}", f"{end:%Y-%m-%d %H:%M}"))
    return cases


SAMPLED = _sampled()
ALL_TIMES = TIME_CASES + _shipped_events() + SAMPLED


def _times(case: tuple[str, str, str, str]) -> EventTimes:
    _id, zone, start, end = case
    return EventTimes(_local(start), _local(end), zone)


def _texts_calendar(description: str) -> bytes:
    times = EventTimes(_local("2027-06-15 10:00"), _local("2027-06-15 12:00"), "Europe/Bucharest")
    return _request(times, summary="Sumar, cu; semne \\ speciale", description=description,
                    location="Piața Unirii, nr. 1; Cluj-Napoca \\ RO",
                    attendee=('Popescu, Ion "Nelu"; ^șef: test', "ion.popescu@example.ro"))


# Descriptions whose 75th octet falls on each byte of a 2-, 3- and 4-byte character.
FOLD_TEXTS = {f"fold-{lead}-{sample}": "x" * lead + sample * 60
              for lead in range(4) for sample in ("ș", "ț", "ă", "â", "î", "€", "😀")}
FOLD_TEXTS["fold-romanian"] = ROMANIAN

SUMMER = EventTimes(_local("2027-06-15 10:00"), _local("2027-06-15 12:00"), "Europe/Brussels")


def _methods() -> dict[str, bytes]:
    template = {"uid": UID, "dtstamp": DTSTAMP, "organiser": ORGANISER, "summary": "Webinar",
                "description": "Detalii", "location": "Online", "url": "https://m100.uefiscdi.ro/"}
    return {
        "REQUEST": calendar(SUMMER, method="REQUEST", sequence=0, attendee=RECIPIENT, **template),
        "PUBLISH": calendar(SUMMER, method="PUBLISH", sequence=0, attendee=None, **template),
        "CANCEL": calendar(SUMMER, method="CANCEL", sequence=1, attendee=RECIPIENT, **template),
    }


METHODS = _methods()

def _probes(case: tuple[str, str, str, str]) -> list[datetime]:
    """Wall-clock times from 1 January of the year before the event to the end of the year after:
    noon of every day, and every hour of the days around each of the zone's changes (zoneinfo)."""
    _id, zone, start, end = case
    real = ZoneInfo(zone)
    day, last = datetime(_local(start).year - 1, 1, 1), datetime(_local(end).year + 2, 1, 1)
    days = []
    while day < last:
        days.append(day)
        day += timedelta(days=1)
    changing = {index for index, day in enumerate(days[:-1])
                if day.replace(tzinfo=real).utcoffset() != days[index + 1].replace(tzinfo=real).utcoffset()}
    probes = []
    for index, day in enumerate(days):
        if changing & {index - 1, index, index + 1}:
            probes.extend(day + timedelta(hours=hour) for hour in range(24))
        else:
            probes.append(day + timedelta(hours=12))
    return probes


# Probes for one calendar per distinct VTIMEZONE (zone and years) among the hand-picked cases.
PROBED: dict[str, list[datetime]] = {}
_spans: set[tuple[str, int, int]] = set()
for _case in TIME_CASES:
    _span = (_case[1], _local(_case[2]).year, _local(_case[3]).year)
    if _span not in _spans:
        _spans.add(_span)
        PROBED[_case[0]] = _probes(_case)

CALENDARS: dict[str, bytes] = {
    **{case[0]: _request(_times(case)) for case in ALL_TIMES},
    **{key: _texts_calendar(text) for key, text in FOLD_TEXTS.items()},
    "escapes": _texts_calendar(ESCAPES),
    **{f"method-{method}": body for method, body in METHODS.items()},
    # RFC 5546 3.2.1: a published event may be cancelled (a public feed shows it called off).
    "publish-cancelled": calendar(SUMMER, method="PUBLISH", status="CANCELLED", sequence=1, attendee=None,
                                  uid=UID, dtstamp=DTSTAMP, organiser=ORGANISER, summary="Webinar"),
}


# ---- the two parsers -----------------------------------------------------------------------

def ical_js_command() -> list[str]:
    """node and tests/ical_parse.mjs, once the pinned ical.js is installed; skips (fails on CI) if not."""
    node = shutil.which("node")
    if not node:
        unavailable(f"node is not on PATH, so ical.js cannot run; install Node.js, then {SETUP_HINT}")
    pinned = json.loads((TESTS_DIR / "package.json").read_text(encoding="utf-8"))["dependencies"]["ical.js"]
    manifest = TESTS_DIR / "node_modules" / "ical.js" / "package.json"
    if not manifest.is_file():
        if not shutil.which("npm"):
            unavailable(f"npm is not on PATH and tests/node_modules is missing; install Node.js/npm, then {SETUP_HINT}")
        unavailable(f"ical.js is not installed in tests/node_modules; {SETUP_HINT}")
    installed = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    if installed != pinned:
        unavailable(f"tests/node_modules has ical.js {installed} but tests/package.json pins {pinned}; run `npm ci` in tests/")
    return [node, str(ICAL_PARSE)]


def read_with_ical_js(calendars: list[bytes | dict], command: list[str], timeout: float = 120) -> list[dict]:
    """What ical.js reads in each calendar (or {"ics": calendar, "probe": …}), in order: one node process for the lot."""
    def line(entry: bytes | dict) -> str:
        if isinstance(entry, dict):
            return json.dumps({**entry, "ics": entry["ics"].decode("utf-8")})
        return json.dumps(entry.decode("utf-8"))

    stdin = "".join(line(entry) + "\n" for entry in calendars)
    done = subprocess.run(command, input=stdin.encode("utf-8"), capture_output=True, cwd=TESTS_DIR,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise AssertionError(f"ical_parse.mjs failed (exit {done.returncode}):\n{done.stderr.decode('utf-8', 'replace')}")
    results = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines() if line.strip()]
    assert len(results) == len(calendars), done.stderr.decode("utf-8", "replace")
    return results


@pytest.fixture(scope="module")
def ical_js() -> dict[str, dict]:
    """Every calendar in CALENDARS as ical.js reads it, by key."""
    keys = list(CALENDARS)
    inputs = [CALENDARS[key] if key not in PROBED else
              {"ics": CALENDARS[key], "probe": [moment.isoformat() for moment in PROBED[key]]}
              for key in keys]
    results = read_with_ical_js(inputs, ical_js_command())
    by_key = dict(zip(keys, results, strict=True))
    refused = {key: result["error"] for key, result in by_key.items() if "error" in result}
    assert not refused, f"ical.js refused: {refused}"
    return by_key


def read_with_icalendar(body: bytes) -> tuple[icalendar.Calendar, icalendar.Event]:
    parsed = icalendar.Calendar.from_ical(body)
    events = parsed.walk("VEVENT")
    assert len(events) == 1
    assert parsed.errors == [] and events[0].errors == [] and all(not part.errors for part in parsed.walk())
    return parsed, events[0]


def own_zone(parsed: icalendar.Calendar):
    """The calendar's VTIMEZONE as a tzinfo, built from its observances (not looked up by TZID)."""
    (vtimezone,) = parsed.walk("VTIMEZONE")
    return vtimezone.to_tz(lookup_tzid=False)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _physical_lines(body: bytes) -> list[bytes]:
    assert body.endswith(b"\r\n")
    return body[:-2].split(b"\r\n")


def _unfolded(body: bytes) -> list[str]:
    return body.decode("utf-8").replace("\r\n ", "").split("\r\n")[:-1]


# ---- times: the same instants in both parsers --------------------------------------------------

def instants_by_icalendar(body: bytes, zone: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """(start, end) in UTC as icalendar reads them: through the TZID (zoneinfo), and through our VTIMEZONE."""
    parsed, event = read_with_icalendar(body)
    vtimezone = own_zone(parsed)
    by_tzid, by_vtimezone = [], []
    for name in ("DTSTART", "DTEND"):
        value = event.decoded(name)
        if "TZID" in event[name].params:
            assert event[name].params["TZID"] == str(value.tzinfo) == zone
            by_tzid.append(_iso(value))
            by_vtimezone.append(_iso(value.replace(tzinfo=vtimezone)))
        else:  # written in UTC: a wall-clock time the zone repeats
            assert value.utcoffset() == timedelta(0)
            by_tzid.append(_iso(value))
            by_vtimezone.append(_iso(value))
    return tuple(by_tzid), tuple(by_vtimezone)


@pytest.mark.parametrize("case", TIME_CASES + _shipped_events(), ids=lambda case: case[0])
def test_start_and_end_are_the_same_instants_in_both_parsers(case, ical_js):
    key, zone, start, end = case
    want = (_iso(expected_utc(_local(start), zone)), _iso(expected_utc(_local(end), zone)))
    by_tzid, by_vtimezone = instants_by_icalendar(CALENDARS[key], zone)
    assert by_tzid == want
    assert by_vtimezone == want
    ours = ical_js[key]
    for side in ("start", "end"):
        assert ours[side]["zone"] in (zone, "UTC")
        assert ours[side]["zone"] == zone or ours[side]["local"].endswith("Z")
    assert (ours["start"]["utc"], ours["end"]["utc"]) == want


def test_sampled_times_are_the_same_instants_in_both_parsers(ical_js):
    wrong = {}
    for key, zone, start, end in SAMPLED:
        want = (_iso(expected_utc(_local(start), zone)), _iso(expected_utc(_local(end), zone)))
        _, python = instants_by_icalendar(CALENDARS[key], zone)
        mozilla = (ical_js[key]["start"]["utc"], ical_js[key]["end"]["utc"])
        if not want == python == mozilla:
            wrong[key] = {"zone": zone, "local": (start, end), "zoneinfo": want, "icalendar": python, "ical.js": mozilla}
    assert not wrong


def _ambiguous_or_skipped(local: datetime, zone: ZoneInfo) -> bool:
    first, second = local.replace(tzinfo=zone, fold=0), local.replace(tzinfo=zone, fold=1)
    return first.utcoffset() != second.utcoffset()


@pytest.mark.parametrize("key", list(PROBED))
def test_vtimezone_gives_zoneinfo_offsets_for_the_years_around_the_event(key, ical_js):
    """From the year before the event to the year after, both parsers read our VTIMEZONE as zoneinfo.

    Wall-clock times the zone skips or repeats are left out: no TZID time is written there
    (test_skipped_and_repeated_times_are_written_so_every_reader_agrees).
    """
    zone = next(case[1] for case in TIME_CASES if case[0] == key)
    parsed, _ = read_with_icalendar(CALENDARS[key])
    vtimezone, real = own_zone(parsed), ZoneInfo(zone)
    offsets = ical_js[key]["offsets"]
    assert len(offsets) == len(PROBED[key])
    wrong, checked = [], 0
    for local, seconds in zip(PROBED[key], offsets, strict=True):
        if _ambiguous_or_skipped(local, real):
            continue
        checked += 1
        want = local.replace(tzinfo=real).utcoffset()
        python, mozilla = local.replace(tzinfo=vtimezone).utcoffset(), timedelta(seconds=seconds)
        if not want == python == mozilla:
            wrong.append((local, want, python, mozilla))
    assert checked > 3 * 365
    assert not wrong, f"{len(wrong)} times differ, first {wrong[:3]}"


def test_skipped_and_repeated_times_are_written_so_every_reader_agrees():
    """ical.js and dateutil read a skipped TZID time with the offset after the gap and a repeated
    one as its second occurrence; RFC 5545 (and zoneinfo, and Herald's links) mean the offset
    before and the first. So those are written as the real wall-clock time, or in UTC."""
    lines = _unfolded(CALENDARS["bucharest-skipped-hour"])
    assert "DTSTART;TZID=Europe/Bucharest:20270328T043000" in lines  # 03:30 does not exist; 01:30Z is 04:30
    assert "DTEND;TZID=Europe/Bucharest:20270328T050000" in lines
    lines = _unfolded(CALENDARS["bucharest-repeated-hour"])
    assert "DTSTART:20271031T003000Z" in lines  # the first 03:30, in summer time
    assert "DTEND;TZID=Europe/Bucharest:20271031T060000" in lines
    lines = _unfolded(CALENDARS["vilnius-at-the-change"])
    assert "DTSTART;TZID=Europe/Vilnius:20270328T040000" in lines
    assert "DTEND;TZID=Europe/Vilnius:20271031T040000" in lines


@pytest.mark.parametrize("zone", EU_ZONES)
def test_eu_zones_are_two_yearly_rules_not_a_list_of_dates(zone):
    lines = vtimezone_lines(zone, 2027, 2027)
    text = "\n".join(lines)
    assert "RDATE" not in text
    assert lines.count("BEGIN:STANDARD") == 1 and lines.count("BEGIN:DAYLIGHT") == 1
    assert "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU" in lines
    assert "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU" in lines
    assert "UNTIL" not in text  # the rule still holds after the event: open-ended
    hours = {"Europe/Bucharest": (3, 4), "Europe/Vilnius": (3, 4), "Europe/Brussels": (2, 3), "Europe/Lisbon": (1, 2)}
    spring, autumn = hours[zone]
    assert f"DTSTART:20250330T0{spring}0000" in lines and f"DTSTART:20251026T0{autumn}0000" in lines


def test_other_shapes_of_rule():
    assert "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU" in vtimezone_lines("America/New_York", 2027, 2027)
    assert "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU" in vtimezone_lines("America/New_York", 2027, 2027)
    sydney = vtimezone_lines("Australia/Sydney", 2027, 2027)
    assert "RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU" in sydney and "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU" in sydney
    istanbul = vtimezone_lines("Europe/Istanbul", 2027, 2027)
    assert istanbul.count("BEGIN:STANDARD") == 1 and "BEGIN:DAYLIGHT" not in istanbul
    assert "TZOFFSETFROM:+0300" in istanbul and "TZOFFSETTO:+0300" in istanbul
    assert any(line.startswith("RRULE:") and ";UNTIL=" in line and line.endswith("Z")
               for line in vtimezone_lines("America/Sao_Paulo", 2019, 2019))


# ---- lines: folding and escaping ---------------------------------------------------------------

def test_every_calendar_is_crlf_lines_of_at_most_75_octets_never_cut_inside_a_character():
    for key, body in CALENDARS.items():
        assert b"\n" not in body.replace(b"\r\n", b"") and b"\r" not in body.replace(b"\r\n", b""), key
        for line in _physical_lines(body):
            assert len(line) <= LINE_OCTETS, (key, line)
            line.decode("utf-8")  # each physical line is whole characters
        assert body.startswith(b"BEGIN:VCALENDAR\r\n") and body.endswith(b"END:VCALENDAR\r\n")


def test_folding_moves_the_cut_before_a_multibyte_character():
    line = "DESCRIPTION:" + "xx" + "ș" * 60  # 14 ASCII octets, then 2-octet letters: octet 75 is a letter's first half
    folded = fold(line)
    physical = folded[:-2].split(b"\r\n")
    assert len(physical[0]) == 74 and all(len(part) <= LINE_OCTETS for part in physical)
    assert folded.decode("utf-8").replace("\r\n ", "") == line + "\r\n"
    assert fold("A" * 75) == b"A" * 75 + b"\r\n"
    assert fold("A" * 76) == b"A" * 75 + b"\r\n A\r\n"


@pytest.mark.parametrize("key", list(FOLD_TEXTS))
def test_long_description_unfolds_to_the_exact_text_in_both_parsers(key, ical_js):
    text = FOLD_TEXTS[key]
    body = CALENDARS[key]
    description_lines = [line for line in _unfolded(body) if line.startswith("DESCRIPTION:")]
    assert len(description_lines) == 1 and len(description_lines[0].encode()) > LINE_OCTETS
    _, event = read_with_icalendar(body)
    assert str(event["DESCRIPTION"]) == text
    assert ical_js[key]["description"] == text


def test_escaping_round_trips_in_both_parsers(ical_js):
    body = CALENDARS["escapes"]
    unfolded = _unfolded(body)
    assert "SUMMARY:Sumar\\, cu\\; semne \\\\ speciale" in unfolded
    assert "LOCATION:Piața Unirii\\, nr. 1\\; Cluj-Napoca \\\\ RO" in unfolded
    newline_text = ESCAPES.replace("\r\n", "\n").replace("\r", "\n")
    _, event = read_with_icalendar(body)
    theirs = ical_js["escapes"]
    for name, text in (("summary", "Sumar, cu; semne \\ speciale"), ("description", newline_text),
                       ("location", "Piața Unirii, nr. 1; Cluj-Napoca \\ RO")):
        assert str(event[name.upper()]) == text
        assert theirs[name] == text
    name = 'Popescu, Ion "Nelu"; ^șef: test'
    assert event["ATTENDEE"].params["CN"] == name
    assert theirs["attendees"][0]["params"]["cn"] == name
    assert str(event["URL"]) == theirs["url"] == "https://www.primariabt.ro/"


@hypothesis_settings(max_examples=100, deadline=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300))
def test_any_text_round_trips_through_icalendar(text):
    body = _texts_calendar(text)
    for line in _physical_lines(body):
        assert len(line) <= LINE_OCTETS
        line.decode("utf-8")
    _, event = read_with_icalendar(body)
    # What escape_text keeps: newlines normalised to LF, other control characters dropped.
    kept = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "", text.replace("\r\n", "\n").replace("\r", "\n"))
    assert str(event.get("DESCRIPTION", "")) == kept


def test_escape_text():
    assert escape_text("a,b;c\\d\ne\r\nf\rg\x00h\ti") == "a\\,b\\;c\\\\d\\ne\\nf\\ng" + "h\ti"


# ---- methods (iTIP) ----------------------------------------------------------------------------

def test_request_names_the_recipient_and_asks_for_a_reply(ical_js):
    body = METHODS["REQUEST"]
    unfolded = _unfolded(body)
    assert "METHOD:REQUEST" in unfolded
    attendees = [line for line in unfolded if line.startswith("ATTENDEE")]
    assert attendees == [("ATTENDEE;CN=Ioana Ștefănescu;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE"
                          ":mailto:ioana.stefanescu@example.ro")]
    parsed, event = read_with_icalendar(body)
    assert parsed["METHOD"] == "REQUEST"
    assert str(event["ATTENDEE"]) == "mailto:ioana.stefanescu@example.ro"
    assert event["ATTENDEE"].params["RSVP"] == "TRUE" and event["ATTENDEE"].params["CN"] == RECIPIENT[0]
    assert str(event["ORGANIZER"]) == "mailto:primaria@primariabt.ro" and event["ORGANIZER"].params["CN"] == ORGANISER[0]
    assert event["STATUS"] == "CONFIRMED"
    theirs = ical_js["method-REQUEST"]
    assert theirs["method"] == "REQUEST" and theirs["uid"] == UID and theirs["sequence"] == 0
    assert theirs["attendees"] == [{"value": "mailto:ioana.stefanescu@example.ro",
                                    "params": {"cn": RECIPIENT[0], "role": "REQ-PARTICIPANT",
                                               "partstat": "NEEDS-ACTION", "rsvp": "TRUE"}}]
    assert theirs["organizer"] == {"value": "mailto:primaria@primariabt.ro", "params": {"cn": ORGANISER[0]}}
    assert theirs["vtimezones"] == [{"tzid": "Europe/Brussels", "standard": 1, "daylight": 1}]
    assert (theirs["version"], theirs["prodid"]) == ("2.0", "-//Herald//Herald invitations//EN")


def test_publish_has_no_attendee(ical_js):
    body = METHODS["PUBLISH"]
    assert not any(line.startswith("ATTENDEE") for line in _unfolded(body))
    parsed, event = read_with_icalendar(body)
    assert parsed["METHOD"] == "PUBLISH" and "ATTENDEE" not in event and event["STATUS"] == "CONFIRMED"
    assert ical_js["method-PUBLISH"]["attendees"] == [] and ical_js["method-PUBLISH"]["method"] == "PUBLISH"


def test_cancel_is_the_same_event_cancelled_with_a_higher_sequence(ical_js):
    _, request = read_with_icalendar(METHODS["REQUEST"])
    parsed, cancel = read_with_icalendar(METHODS["CANCEL"])
    assert parsed["METHOD"] == "CANCEL" and cancel["STATUS"] == "CANCELLED"
    assert str(cancel["UID"]) == str(request["UID"]) == UID
    assert cancel.decoded("SEQUENCE") > request.decoded("SEQUENCE")
    theirs, before = ical_js["method-CANCEL"], ical_js["method-REQUEST"]
    assert theirs["method"] == "CANCEL" and theirs["status"] == "CANCELLED" and theirs["uid"] == before["uid"]
    assert theirs["sequence"] > before["sequence"]
    assert [a["value"] for a in theirs["attendees"]] == ["mailto:ioana.stefanescu@example.ro"]
    assert "rsvp" not in theirs["attendees"][0]["params"]


def test_a_published_event_may_be_cancelled(ical_js):
    body = CALENDARS["publish-cancelled"]
    assert "STATUS:CANCELLED" in _unfolded(body)
    parsed, event = read_with_icalendar(body)
    assert parsed["METHOD"] == "PUBLISH" and event["STATUS"] == "CANCELLED" and "ATTENDEE" not in event
    theirs = ical_js["publish-cancelled"]
    assert (theirs["method"], theirs["status"], theirs["attendees"]) == ("PUBLISH", "CANCELLED", [])
    template = CalendarTemplate.prepare(SUMMER, method="PUBLISH", status="CANCELLED", uid=UID, sequence=1,
                                        dtstamp=DTSTAMP, organiser=ORGANISER, summary="Webinar")
    assert template.without_attendee() == body


def test_dtstamp_is_utc(ical_js):
    for key, body in CALENDARS.items():
        stamps = [line for line in _unfolded(body) if line.startswith("DTSTAMP")]
        assert stamps == ["DTSTAMP:20270110T083015Z"], key
    _, event = read_with_icalendar(METHODS["REQUEST"])
    assert event.decoded("DTSTAMP") == DTSTAMP
    assert ical_js["method-REQUEST"]["dtstamp"] == "2027-01-10T08:30:15Z"
    with pytest.raises(ValueError, match="aware"):
        _request(SUMMER, dtstamp=datetime(2027, 1, 10))


def test_status_and_attendee_must_fit_the_method():
    fields = {"uid": UID, "sequence": 0, "dtstamp": DTSTAMP, "organiser": ORGANISER, "summary": "x"}
    with pytest.raises(ValueError, match="STATUS"):
        calendar(SUMMER, method="CANCEL", status="CONFIRMED", attendee=RECIPIENT, **fields)
    with pytest.raises(ValueError, match="STATUS:CANCELLED does not go with METHOD:REQUEST"):
        calendar(SUMMER, method="REQUEST", status="CANCELLED", attendee=RECIPIENT, **fields)
    assert b"STATUS:CANCELLED\r\n" in calendar(SUMMER, method="PUBLISH", status="CANCELLED", attendee=None, **fields)
    with pytest.raises(ValueError, match="attendee"):
        calendar(SUMMER, method="REQUEST", attendee=None, **fields)
    with pytest.raises(ValueError, match="attendee"):
        calendar(SUMMER, method="PUBLISH", attendee=RECIPIENT, **fields)
    with pytest.raises(ValueError, match="sequence"):
        calendar(SUMMER, method="REQUEST", attendee=RECIPIENT, **{**fields, "sequence": -1})
    with pytest.raises(ValueError, match="without tzinfo"):
        EventTimes(datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 1, 2, tzinfo=UTC), "Europe/Bucharest")
    with pytest.raises(ValueError, match="ends"):
        EventTimes(_local("2027-10-31 03:30"), _local("2027-10-31 03:10"), "Europe/Bucharest")


def test_template_only_changes_the_attendee_line():
    template = CalendarTemplate.prepare(SUMMER, method="REQUEST", uid=UID, sequence=0, dtstamp=DTSTAMP,
                                        organiser=ORGANISER, summary="Webinar", description="Detalii",
                                        location="Online", url="https://m100.uefiscdi.ro/")
    assert template.for_attendee(*RECIPIENT) == METHODS["REQUEST"]
    other = template.for_attendee("Andrei Munteanu", "andrei@example.ro")
    differing = set(_unfolded(other)) ^ set(_unfolded(METHODS["REQUEST"]))
    assert {line.split(";", 1)[0] for line in differing} == {"ATTENDEE"} and len(differing) == 2
    with pytest.raises(ValueError):
        template.without_attendee()
    publish = CalendarTemplate.prepare(SUMMER, method="PUBLISH", uid=UID, sequence=0, dtstamp=DTSTAMP,
                                       organiser=ORGANISER, summary="Webinar", description="Detalii",
                                       location="Online", url="https://m100.uefiscdi.ro/")
    assert publish.without_attendee() == METHODS["PUBLISH"]
    with pytest.raises(ValueError):
        publish.for_attendee(*RECIPIENT)


def test_shipped_event_through_event_times_of_meta():
    item = load_item(PROJECT_ROOT / "content" / "events" / "di4c-partners-meeting-botosani")
    times = EventTimes.of(item.meta)
    assert (times.start_utc, times.end_utc) == (item.meta.aware(item.meta.start).astimezone(UTC),
                                                item.meta.aware(item.meta.end).astimezone(UTC))


def test_uid_and_content_type():
    assert uid_for("eui-online-qa-session", "Herald.Example.") == "eui-online-qa-session@herald.example"
    assert uid_for("eui-online-qa-session", "herald.example") == uid_for("eui-online-qa-session", "herald.example")
    with pytest.raises(ValueError):
        uid_for("Not A Slug", "herald.example")
    with pytest.raises(ValueError):
        uid_for("slug", "no spaces allowed.example")
    assert content_type("REQUEST") == 'text/calendar; charset="UTF-8"; method=REQUEST'
