"""`herald check` passes on the shipped content and pins each kind of mistake to its file and line."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.settings import PROJECT_ROOT
from tests.conftest import FIXTURES
from worker.cli import app
from worker.commands.check import check


def test_shipped_content_and_templates_pass(settings):
    assert check([], settings) == []


def test_fixture_items_pass(settings):
    assert check([FIXTURES / "newsletter", FIXTURES / "event"], settings) == []


@dataclass(frozen=True)
class Break:
    """One mistake: in `file` (of a copied fixture item, or of a copy of templates/), replace `old` with `new`."""

    name: str
    where: str  # "newsletter", "event" or "templates"
    file: str
    old: str
    new: str
    line: int  # where the mistake is, in the broken file
    says: str  # what the message must contain


BREAKS = [
    Break("bad YAML", "newsletter", "meta.yaml", "audience: all-subscribers", "audience: all: subscribers",
          4, "YAML syntax"),
    Break("unknown audience", "newsletter", "meta.yaml", "audience: all-subscribers", "audience: all-subscriber",
          4, "audience 'all-subscriber' is not a segment in segments.yaml; use one of all-subscribers, "),
    Break("missing field", "newsletter", "meta.yaml", "    deadline: 2027-03-31 23:59\n", "",
          13, "'deadline' of call 'urbact-iv' is missing"),
    Break("unknown field", "event", "meta.yaml", "capacity: 40", "capacitty: 40", 11, "unknown field 'capacitty'"),
    Break("unknown variable", "templates", "newsletter.mjml.j2", "{{ article.title }}", "{{ article.headline }}",
          0, "unknown template variable"),
    Break("missing translation", "newsletter", "en.md", "## CO4CITIES: co-creating public services {#co4cities}\n", "",
          26, "article 'co4cities' of meta.yaml has no section here"),
    Break("missing catalogue string", "templates", "i18n/en.yaml", "unsubscribe: Unsubscribe\n", "",
          0, "'unsubscribe' is missing; translate"),
    Break("cedilla", "newsletter", "ro.md", "Cluj-Napoca și-a", "Cluj-Napoca şi-a", 0, "cedilla letter 'ş'"),
    Break("invalid time zone", "event", "meta.yaml", "Europe/Bucharest", "Europe/Bucuresti", 5,
          "'Europe/Bucuresti' is not an IANA time zone"),
    Break("unclosed Jinja tag", "templates", "newsletter.mjml.j2", "/>{% endif %}", "/>",
          0, "{% if %} is never closed; add {% endif %}"),
    Break("invalid MJML", "templates", "invitation.mjml.j2", "</mj-column>", "</mj-colum>", 0, "</mj-colum>"),
    Break("unknown MJML tag", "templates", "reminder.mjml.j2", "<mj-column>", "<mj-colum>", 0, "did you mean <mj-column>?"),
    Break("end before start", "event", "meta.yaml", "end: 2027-02-25 16:00", "end: 2027-02-23 16:00", 0,
          "end is not after start"),
    Break("plain http link", "newsletter", "ro.md", "https://urbact.eu/news", "http://urbact.eu/news", 0,
          "not an absolute https:// address"),
    Break("image without alt", "newsletter", "en.md", "    image_alt: Logo of the CO4CITIES network\n", "",
          5, "has an image but no image_alt"),
    Break("article heading without id", "newsletter", "ro.md", " {#co4cities}", "", 0, "article heading has no id"),
]


def _line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize("mistake", BREAKS, ids=lambda b: b.name)
def test_each_mistake_is_reported_at_its_line(mistake: Break, tmp_path: Path, settings):
    source = PROJECT_ROOT / "templates" if mistake.where == "templates" else FIXTURES / mistake.where
    target = tmp_path / mistake.where
    shutil.copytree(source, target)
    broken = target / mistake.file
    text = broken.read_text(encoding="utf-8")
    assert mistake.old in text, "the fixture changed; update this case"
    broken.write_text(text.replace(mistake.old, mistake.new, 1), encoding="utf-8")
    line = mistake.line or _line_of(text, mistake.old)
    # A template case checks the shipped content against the broken templates; a content case, the item alone.
    paths = [target] if mistake.where != "templates" else [target, FIXTURES / "newsletter", FIXTURES / "event"]

    problems = check(paths, settings)

    assert problems, f"{mistake.name} was not caught"
    reported = [str(p) for p in problems]
    assert any(p.file == broken.resolve() and p.line == line and mistake.says in p.message for p in problems), reported


def test_check_command_exits_non_zero_with_file_line_messages(tmp_path: Path):
    item = tmp_path / "newsletter"
    shutil.copytree(FIXTURES / "newsletter", item)
    meta = item / "meta.yaml"
    meta.write_text(meta.read_text().replace("Europe/Bucharest", "Europe/Nowhere"))

    result = CliRunner().invoke(app, ["check", str(item)])

    assert result.exit_code == 1
    assert f"{meta}:3: 'timezone': 'Europe/Nowhere' is not an IANA time zone" in result.output


def test_check_fix_rewrites_cedillas(tmp_path: Path):
    item = tmp_path / "newsletter"
    shutil.copytree(FIXTURES / "newsletter", item)
    ro = item / "ro.md"
    ro.write_text(ro.read_text().replace("ș", "ş").replace("ț", "ţ"))

    fixed = CliRunner().invoke(app, ["check", "--fix", str(item)])
    again = CliRunner().invoke(app, ["check", str(item)])

    assert fixed.exit_code == 0, fixed.output
    assert "ş" not in ro.read_text() and "ș" in ro.read_text()
    assert again.exit_code == 0


def test_check_works_on_a_draft_outside_the_content_folder_when_a_store_exists(db_settings, tmp_path: Path):
    """Seen: `herald check PATH` on a valid event folder outside content/ crashed with a ValueError traceback
    once a store existed (looking for what its invitees had been told). Nothing outside content/ can have
    been sent, so there is nothing owed to report for it."""
    draft = tmp_path / "drafts" / "event"
    shutil.copytree(FIXTURES / "event", draft)

    result = CliRunner().invoke(app, ["check", str(draft)])

    assert result.exception is None and result.exit_code == 0, result.output
    assert "All content and templates are valid." in result.output


@pytest.mark.parametrize("base_url, refused", [("http://news.example.org", True), ("https://news.example.org", False),
                                               ("http://localhost:8000", False), ("http://127.0.0.1:8000", False)])
def test_check_refuses_a_base_url_that_would_put_plain_http_in_the_unsubscribe_links(base_url, refused):
    result = CliRunner().invoke(app, ["check", str(FIXTURES / "newsletter")], env={"HERALD_BASE_URL": base_url})

    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == (1 if refused else 0), result.output
    said = f"HERALD_BASE_URL={base_url} is not https" in " ".join(result.output.split())
    assert said == refused and ("Set HERALD_BASE_URL to the https:// address" in " ".join(result.output.split())) == refused


def test_check_reports_a_file_linked_from_outside_the_item_at_its_line(tmp_path: Path):
    item = tmp_path / "newsletter"
    shutil.copytree(FIXTURES / "newsletter", item)
    secret = tmp_path / "data" / "secret.key"
    secret.parent.mkdir()
    secret.write_text("s3cr3t-never-to-be-mailed\n")
    (item / "en.md").unlink()
    (item / "en.md").symlink_to(secret)

    result = CliRunner().invoke(app, ["check", str(item)])

    assert result.exit_code == 1
    assert f"{item / 'en.md'}:1: is a symbolic link out of the item folder" in result.output
    assert "s3cr3t" not in result.output and "front matter" not in result.output
