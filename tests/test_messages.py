"""One clear line for every content mistake (issue 22): `herald check` as an editor runs it, each message exact,
each with its exit code, and never a traceback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from foundation.settings import PROJECT_ROOT
from tests.conftest import FIXTURES
from web.app import create_app
from worker.campaigns import ledger
from worker.cli import app


def herald(*args: str, **env: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "250", **env})


@dataclass(frozen=True)
class Mistake:
    """In `file` of a copied fixture item, replace `old` with `new`; `herald check` prints `says` at `at`'s line."""

    name: str
    item: str  # "newsletter" or "event"
    file: str
    old: str
    new: str
    says: str
    at: str = ""  # the text whose line is reported (default: `new`)


MISTAKES = [
    Mistake("a day February does not have", "newsletter", "meta.yaml", "issue_date: 2027-01-14", "issue_date: 2027-02-30",
            "'issue_date': 2027-02-30 is not a date: February 2027 has 28 days"),
    Mistake("a date written day first", "newsletter", "meta.yaml", "issue_date: 2027-01-14", "issue_date: 11.03.2027",
            "'issue_date': write dates as 2027-03-11 (year-month-day), not 11.03.2027"),
    Mistake("a time written day first", "event", "meta.yaml", "start: 2027-02-24 09:30", "start: 24.02.2027 09:30",
            "'start': write times as 2027-02-24 09:30 (year-month-day hour:minute), not 24.02.2027 09:30"),
    Mistake("a day April does not have", "event", "meta.yaml", "start: 2027-02-24 09:30", "start: 2027-04-31 09:30",
            "'start': 2027-04-31 is not a date: April has 30 days"),
    Mistake("a thirteenth month", "newsletter", "meta.yaml", "issue_date: 2027-01-14", "issue_date: 2027-13-01",
            "'issue_date': 2027-13-01 is not a date: a year has 12 months; write dates as YYYY-MM-DD"),
    Mistake("an audience that is no segment name", "newsletter", "meta.yaml", "audience: all-subscribers",
            "audience: All Subscribers",
            "audience 'All Subscribers' is not a segment in segments.yaml; use one of all-subscribers, "),
    Mistake("a call's missing deadline", "newsletter", "meta.yaml", "    deadline: 2027-03-31 23:59\n", "",
            "'deadline' of call 'urbact-iv' is missing; add it (see content/README.md)", at="  - id: urbact-iv"),
    Mistake("a call's bad deadline", "newsletter", "meta.yaml", "deadline: 2027-03-31 23:59", "deadline: 2027-03-32 23:59",
            "'deadline' of call 'urbact-iv': 2027-03-32 is not a date: March has 31 days"),
    Mistake("an agenda time YAML reads as a number", "event", "en.md", "  - time: 10:00", "  - time: 10.00",
            "'time' of agenda entry 2: YAML reads 10.0 as a number; put the text in quotes"),
    Mistake("a misspelt field", "newsletter", "meta.yaml", "issue_date: 2027-01-14", "isue_date: 2027-01-14",
            "unknown field 'isue_date': did you mean issue_date?"),
    Mistake("a misspelt field in a call", "newsletter", "meta.yaml", "deadline: 2027-03-31 23:59",
            "dedline: 2027-03-31 23:59", "unknown field 'dedline' in call 'urbact-iv': did you mean deadline?"),
    Mistake("the subject in meta.yaml", "newsletter", "meta.yaml", "timezone: Europe/Bucharest",
            "timezone: Europe/Bucharest\nsubject: Buletin", "'subject' belongs in ro.md and en.md (between their "
            "--- lines), not in meta.yaml; move it there", at="subject: Buletin"),
    Mistake("send_at in a language file", "newsletter", "en.md", "subject:", "send_at: 2027-01-14 10:00\nsubject:",
            "'send_at' belongs in meta.yaml, not in en.md; move it there", at="send_at: 2027-01-14 10:00"),
    Mistake("an image without its alt text", "newsletter", "en.md", "    image_alt: Logo of the CO4CITIES network\n", "",
            "article 'co4cities' has an image but no image_alt in en.md; describe the image under articles: "
            "co4cities: image_alt:", at="  co4cities:"),
    Mistake("a Markdown image without a description", "newsletter", "ro.md", "- ateliere cu cetățenii",
            "- ateliere cu cetățenii ![](https://urbact.eu/atelier.png)",
            "image https://urbact.eu/atelier.png has no description; write ![description](https://urbact.eu/atelier.png), "
            "saying what the picture shows"),
]


def _break(mistake: Mistake, tmp_path: Path) -> tuple[Path, int]:
    item = tmp_path / mistake.item
    shutil.copytree(FIXTURES / mistake.item, item)
    broken = item / mistake.file
    text = broken.read_text(encoding="utf-8")
    assert mistake.old in text, "the fixture changed; update this case"
    text = text.replace(mistake.old, mistake.new, 1)
    broken.write_text(text, encoding="utf-8")
    needle = mistake.at or mistake.new
    return broken, text[: text.index(needle)].count("\n") + 1


def _line(file: Path, needle: str) -> int:
    text = file.read_text(encoding="utf-8")
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize("mistake", MISTAKES, ids=lambda m: m.name)
def test_each_content_mistake_is_one_line_an_editor_can_act_on(mistake: Mistake, tmp_path: Path):
    broken, line = _break(mistake, tmp_path)

    result = herald("check", str(broken.parent))

    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    said = f"{broken}:{line}: {mistake.says}"
    lines = result.stderr.splitlines()
    assert (any(shown.startswith(said) for shown in lines) if said.endswith(" ") else said in lines), result.stderr
    assert "Traceback" not in result.output and "Error" not in result.output
    assert lines[-1] == "1 problem(s); nothing is sent until `herald check` passes.", result.stderr


def test_a_misspelt_field_is_not_also_reported_missing(tmp_path: Path):
    broken, _ = _break(next(m for m in MISTAKES if m.name == "a misspelt field"), tmp_path)
    result = herald("check", str(broken.parent))
    assert result.exit_code == 1
    assert "'issue_date' is missing" not in result.stderr


def test_a_markdown_image_without_a_description_is_reported_once(tmp_path: Path):
    broken, _ = _break(MISTAKES[-1], tmp_path)
    result = herald("check", str(broken.parent))
    assert result.exit_code == 1
    assert sum("atelier.png" in line for line in result.stderr.splitlines()) == 1, result.stderr


def test_the_language_files_are_checked_even_when_meta_yaml_is_wrong(tmp_path: Path):
    """content/README.md promises every problem at once: a broken meta.yaml does not hide those of ro.md."""
    item = tmp_path / "newsletter"
    shutil.copytree(FIXTURES / "newsletter", item)
    meta, ro = item / "meta.yaml", item / "ro.md"
    meta.write_text(meta.read_text().replace("Europe/Bucharest", "Europe/Nowhere"))
    ro.write_text(ro.read_text().replace("subject:", "subiect:").replace("și-a", "şi-a"))

    result = herald("check", str(item))

    assert result.exit_code == 1
    assert f"{meta}:3: 'timezone': 'Europe/Nowhere' is not an IANA time zone" in result.stderr
    assert f"{ro}:2: unknown field 'subiect': did you mean subject?" in result.stderr
    assert f"{ro}:{_line(ro, 'şi-a')}: cedilla letter 'ş' at column 13" in result.stderr


@pytest.mark.parametrize("name", ["ro.md", "en.md", "meta.yaml"])
def test_checking_a_file_checks_its_item(name: str, tmp_path: Path):
    """Seen: `herald check content/…/ro.md` said "All content and templates are valid." with a cedilla and a bad
    date in the item."""
    item = tmp_path / "newsletter"
    shutil.copytree(FIXTURES / "newsletter", item)
    meta, ro = item / "meta.yaml", item / "ro.md"
    meta.write_text(meta.read_text().replace("issue_date: 2027-01-14", "issue_date: 2027-02-30"))
    ro.write_text(ro.read_text().replace("și-a", "şi-a"))

    result = herald("check", str(item / name))

    assert result.exit_code == 1, result.output
    assert "All content and templates are valid." not in result.output
    assert f"{meta}:2: 'issue_date': 2027-02-30 is not a date: February 2027 has 28 days" in result.stderr
    assert f"{ro}:{_line(ro, 'şi-a')}: cedilla letter 'ş' at column 13" in result.stderr


def test_a_valid_item_checked_by_one_of_its_files_passes(tmp_path: Path):
    result = herald("check", str(FIXTURES / "event" / "ro.md"))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "All content and templates are valid."


def test_a_file_outside_any_item_is_said_so(tmp_path: Path):
    stray = tmp_path / "notes.md"
    stray.write_text("# notes\n")
    result = herald("check", str(stray))
    assert result.exit_code == 1
    assert (f"{stray}:1: is not in a content item (a folder with meta.yaml); give the item's folder, or no path "
            "to check everything") in result.stderr


# ---- the `herald` command's own lines -------------------------------------------------------------

NEWSLETTER = "newsletters/2027-01-uia-transfer-networks"


def herald_piped(*args: str) -> subprocess.CompletedProcess[str]:
    """`herald …` as a separate process whose output goes to a pipe, as in a script or `| less`; no COLUMNS set."""
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], capture_output=True, text=True, env=env,
                          timeout=60, cwd=PROJECT_ROOT, check=False)


def _campaign(sessions, states: tuple[str, ...], send_at: datetime | None = None) -> int:
    """A campaign of the shipped newsletter, scheduled (with `send_at`) or sending, then moved through `states`, an
    hour apart from 2027-01-14 08:02 UTC."""
    start = datetime(2027, 1, 14, 8, 0, tzinfo=UTC)
    with sessions() as session:
        campaign = ledger.create(session, item=NEWSLETTER, message="newsletter", segment="all-subscribers",
                                    edition=None, send_at=send_at, origin="cli", now=start)
        for hour, state in enumerate(states, 1):
            ledger.move(campaign, state, start + timedelta(hours=hour, minutes=2), "")
        session.commit()
        return campaign.id


def test_version():
    result = herald("--version")
    assert result.exit_code == 0 and result.stdout == f"herald {version('herald')}\n"


@pytest.mark.parametrize("command", [["send"], ["subscribers", "import"], ["status"], ["render"], ["check"],
                                     ["events", "attendees"], ["subscribers", "erase"]])
def test_help_says_what_to_write_without_python_types(command: list[str]):
    result = herald(*command, "--help")
    assert result.exit_code == 0, result.output
    assert not re.search(r"<(bool|str|int|path|list\[str\])>", result.stdout), result.stdout


def test_render_help_lists_every_message_an_item_can_have():
    said = " ".join(herald("render", "--help").stdout.replace("│", " ").split())
    assert "newsletter for a newsletter; invitation, update, reminder, cancellation, followup or waitlist for an " \
           "event" in said, said


def test_status_of_a_campaign_that_does_not_exist_is_one_line_and_no_bar(db_settings):
    result = herald_piped("status", "999")
    assert result.returncode == 2
    assert result.stdout == "" and result.stderr == "No campaign 999; `herald campaigns list` shows them.\n"


def test_status_of_a_scheduled_campaign_says_the_day_in_the_item_zone_and_exits(sessions):
    """Seen: a bar that never ended, "scheduled until 08:00:00 UTC", with no date."""
    campaign_id = _campaign(sessions, (), send_at=datetime(2099, 1, 1, 8, 0, tzinfo=UTC))

    result = herald_piped("status", str(campaign_id))

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"Campaign {campaign_id} is scheduled: 0 of 0 sent, 0 failed, 0 bounced, 0 suppressed.",
        (f"It goes out on 2099-01-01 10:00 Europe/Bucharest (08:00 UTC); `herald status {campaign_id} --follow` "
         "waits for it.")]


def test_status_piped_prints_plain_lines_and_no_bar(sessions):
    campaign_id = _campaign(sessions, ("sent",))

    result = herald_piped("status", str(campaign_id))

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Campaign {campaign_id} is sent: 0 of 0 sent, 0 failed, 0 bounced, 0 suppressed.\n"


def test_campaigns_list_piped_is_not_cut_to_80_columns(sessions):
    _campaign(sessions, (), send_at=datetime(2099, 1, 1, 8, 0, tzinfo=UTC))

    result = herald_piped("campaigns", "list")

    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if NEWSLETTER in line)
    assert re.search(rf"{NEWSLETTER}\s+│ newsletter\s+│ all-subscribers\s+│ scheduled\s+│ 2099-01-01 08:00\s+│\s+0 │"
                     r"\s+0 │ 0\s+│ 0\s+│ 0\s+│ 0\s+│", row), result.stdout
    assert all("…" not in line for line in result.stdout.splitlines())


@pytest.mark.parametrize("verb", ["pause", "resume", "cancel"])
def test_acting_on_a_finished_campaign_says_so_in_plain_words(sessions, verb: str):
    campaign_id = _campaign(sessions, ("sent",))

    result = herald(verb, str(campaign_id))

    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == (f"campaign {campaign_id} was sent on 2027-01-14 11:02 Europe/Bucharest (09:02 UTC); "
                             f"there is nothing to {verb}\n")


@pytest.mark.parametrize("given", ["eui-online-qa-session", "events/eui-online-qa-session",
                                   "content/events/eui-online-qa-session",
                                   str(PROJECT_ROOT / "content/events/eui-online-qa-session/ro.md")])
def test_render_takes_an_item_in_every_form(given: str, tmp_path: Path):
    result = herald("render", given, "--message", "invitation", "--edition", "en", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in (tmp_path / "eui-online-qa-session").iterdir()) == [
        "invitation.en.eml", "invitation.en.html", "invitation.en.txt"]


@pytest.mark.parametrize("command", [["render"], ["send"], ["events", "attendees"]])
def test_an_item_that_does_not_exist_is_no_such_item_with_close_matches(db_settings, command: list[str]):
    result = herald(*command, "di4c-partners-meeting")
    assert result.exit_code in (1, 2) and result.stdout == "", result.output
    assert result.stderr == ("no such item: 'di4c-partners-meeting'; did you mean "
                             f"{'' if command == ['events', 'attendees'] else 'events/'}"
                             "di4c-partners-meeting-botosani?\n"), result.stderr


@pytest.mark.parametrize("given", ["eui-online-qa-session", "events/eui-online-qa-session",
                                   "content/events/eui-online-qa-session"])
def test_send_takes_an_item_in_every_form(db_settings, given: str):
    result = herald("send", given, "--dry-run", HERALD_OUTBOX_DIR=str(db_settings.outbox_dir))
    assert result.exit_code == 0, result.output
    assert "invitation of eui-online-qa-session to 'all-subscribers'" in result.stdout


@pytest.mark.parametrize("given", ["events/eui-online-qa-session", "content/events/eui-online-qa-session"])
def test_events_attendees_takes_an_item_in_every_form(db_settings, given: str):
    by_name = herald("events", "attendees", "eui-online-qa-session")
    by_path = herald("events", "attendees", given)
    assert by_name.exit_code == by_path.exit_code == 0, by_path.output
    assert by_path.stdout == by_name.stdout


@pytest.mark.parametrize(("given", "status", "said"), [
    ("2027-01-uia-transfer-networks", 201, NEWSLETTER),
    ("content/" + NEWSLETTER, 201, NEWSLETTER),
    ("newsletters/2027-01-uia-transfer-network", 422,
     "no such item: 'newsletters/2027-01-uia-transfer-network'; did you mean " + NEWSLETTER + "?"),
])
def test_the_api_takes_an_item_in_every_form(db_settings, sessions, broker, given: str, status: int, said: str):
    with TestClient(create_app(replace(db_settings, api_token="t0ken"))) as client:
        answer = client.post("/api/campaigns", json={"item": given, "send_at": "2099-01-14T10:00:00+02:00"},
                             headers={"Authorization": "Bearer t0ken"})
    assert answer.status_code == status, answer.text
    assert answer.json()["item" if status == 201 else "detail"] == said
