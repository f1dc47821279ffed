"""The `herald` command as an operator uses it, and README's promise of two set-up commands."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.settings import PROJECT_ROOT
from tests.conftest import FIXTURES, parse_eml
from worker.cli import app


def test_render_writes_html_text_and_eml_per_edition(tmp_path: Path):
    result = CliRunner().invoke(app, ["render", str(FIXTURES / "event"), "--out", str(tmp_path)])

    assert result.exit_code == 0, result.output
    written = sorted(p.name for p in (tmp_path / "event").iterdir())
    # Every message of an event without a follow_up in its meta.yaml.
    assert written == sorted(f"{m}.{e}.{x}" for m in ("invitation", "update", "reminder", "cancellation", "waitlist")
                             for e in ("ro", "en", "both") for x in ("html", "txt", "eml"))
    parsed = parse_eml((tmp_path / "event" / "invitation.both.eml").read_bytes())
    assert parsed["Subject"].startswith("Invitație: reuniunea partenerilor DI4C la Botoșani / Invitation:")
    assert "Rendered for a sample recipient" in result.output


def test_render_one_edition_and_message(tmp_path: Path):
    result = CliRunner().invoke(app, ["render", str(FIXTURES / "event"), "--edition", "en",
                                      "--message", "reminder", "--out", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "event").iterdir()) == ["reminder.en.eml", "reminder.en.html", "reminder.en.txt"]
    parsed = parse_eml((tmp_path / "event" / "reminder.en.eml").read_bytes())
    assert parsed["Subject"] == "Reminder: DI4C partners' meeting"
    assert "A reminder that “DI4C partners' meeting” starts soon." in (tmp_path / "event" / "reminder.en.txt").read_text()


def test_render_refuses_broken_content_and_writes_nothing(tmp_path: Path):
    item = tmp_path / "item"
    shutil.copytree(FIXTURES / "newsletter", item)
    (item / "meta.yaml").write_text((item / "meta.yaml").read_text().replace("issue_date: 2027-01-14\n", ""))

    result = CliRunner().invoke(app, ["render", str(item), "--out", str(tmp_path / "out")])

    assert result.exit_code == 1
    assert re.search(r"meta\.yaml:1: 'issue_date' is missing", result.output)
    assert not (tmp_path / "out").exists()


def test_unknown_edition_is_refused(tmp_path: Path):
    result = CliRunner().invoke(app, ["render", str(FIXTURES / "event"), "--edition", "fr", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "ro, en, both or all" in result.output


def test_readme_starts_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (PROJECT_ROOT / "README.md").read_text()
    commands = re.findall(r"^(python3 bootstrap\.py \w+)", readme.split("```sh", 1)[1].split("```", 1)[0], re.M)
    assert commands == ["python3 bootstrap.py demo", "python3 bootstrap.py test"]
    assert "python3 bootstrap.py test" in (PROJECT_ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("given", ["a" * 6000, "a/" * 3000, "../../../etc", "/tmp", str(FIXTURES / "event")])
def test_events_attendees_answers_a_path_outside_the_events_folder_in_one_line(db_settings, given):
    result = CliRunner().invoke(app, ["events", "attendees", given], env={"COLUMNS": "250"})

    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), result.output
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "di4c-partners-meeting-botosani" in result.stderr, "it says which events there are"


def test_events_attendees_takes_the_events_folder_path_as_well_as_its_name(db_settings):
    by_name = CliRunner().invoke(app, ["events", "attendees", "eui-online-qa-session"], env={"COLUMNS": "250"})
    by_path = CliRunner().invoke(app, ["events", "attendees", str(PROJECT_ROOT / "content/events/eui-online-qa-session")],
                                 env={"COLUMNS": "250"})
    assert by_name.exit_code == by_path.exit_code == 0 and by_path.stdout == by_name.stdout


@pytest.mark.parametrize("command", ["render", "check", "send"])
def test_a_path_the_file_system_cannot_look_up_gets_one_clear_line(command, tmp_path: Path):
    result = CliRunner().invoke(app, [command, str(tmp_path / ("a/" * 3000))], env={"COLUMNS": "250"})

    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output and "OSError" not in result.output
