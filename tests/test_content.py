"""The content format's parsing rules that editors rely on."""

from __future__ import annotations

import shutil
from datetime import datetime

import pytest

from foundation.problems import ContentInvalid
from foundation.settings import PROJECT_ROOT
from foundation.yamldoc import parse_yaml
from tests.conftest import FIXTURES
from worker.authoring.content import load_item
from worker.rendering.markdown import LinkList, to_text


def test_yaml_keeps_times_and_country_codes_as_text():
    doc = parse_yaml("time: 10:00\ncountry: NO\nflag: yes\nwhen: 2027-01-02 10:00\nday: 2027-01-02\n")
    assert doc.data["time"] == "10:00" and doc.data["country"] == "NO" and doc.data["flag"] == "yes"
    assert doc.data["when"] == "2027-01-02 10:00" and str(doc.data["day"]) == "2027-01-02"


def test_yaml_lines_point_at_the_value_or_its_closest_parent():
    doc = parse_yaml("a: 1\nlist:\n  - x: 1\n    y: 2\n", first_line=2)
    assert doc.line_of(("list", 0, "y")) == 5
    assert doc.line_of(("list", 0, "missing")) == 4
    assert doc.line_of(("nothing",)) == 2


def test_event_times_are_local_to_the_item_zone():
    event = load_item(FIXTURES / "event").meta
    start = event.aware(event.start)
    assert start.isoformat() == "2027-02-24T09:30:00+02:00"
    assert event.start == datetime(2027, 2, 24, 9, 30)


def test_articles_are_cut_at_their_headings():
    text = load_item(FIXTURES / "newsletter").text("ro")
    assert list(text.sections) == ["co4cities"]
    assert text.sections["co4cities"].title == "CO4CITIES: co-crearea serviciilor publice"
    assert text.sections["co4cities"].line == 22
    assert text.intro.startswith("Vă prezentăm noutățile lunii")


@pytest.mark.parametrize(("source", "expected"), [
    ("# Title\n\nText.", "Title\n=====\n\nText."),
    ("1. one\n2. two", "1. one\n2. two"),
    ("See [the call](https://urbact.eu/call) and [it again](https://urbact.eu/call).",
     "See the call [1] and it again [1]."),
    ("Write to [us](mailto:a@b.ro).", "Write to us."),
])
def test_markdown_to_text(source, expected):
    assert to_text(source, LinkList()) == expected


@pytest.mark.parametrize("section", ["## A newsletter", "## An event invitation"])
def test_the_examples_in_content_readme_are_valid_items(section, tmp_path):
    readme = (PROJECT_ROOT / "content" / "README.md").read_text()
    part = readme.split(section, 1)[1]
    meta = part.split("```yaml\n", 1)[1].split("\n```", 1)[0]
    text = part.split("```markdown\n", 1)[1].split("\n```\n", 1)[0]
    (tmp_path / "meta.yaml").write_text(meta + "\n")
    for language in ("ro", "en"):
        (tmp_path / f"{language}.md").write_text(text + "\n")

    item = load_item(tmp_path)

    assert item.kind == ("newsletter" if "newsletter" in section else "event")


def test_a_path_the_file_system_cannot_look_up_is_a_problem_not_an_os_error(tmp_path):
    """Seen through the API: a 6,000-character item path raised ENAMETOOLONG, a 500."""
    with pytest.raises(ContentInvalid) as refused:
        load_item(tmp_path / ("a/" * 3000))
    [problem] = refused.value.problems
    assert problem.line == 1 and "cannot be read" in problem.message


@pytest.mark.parametrize("name", ["meta.yaml", "en.md"])
def test_a_file_linked_from_outside_the_item_is_refused_and_never_read(name, tmp_path):
    """Seen: an en.md that was a symbolic link to data/secret.key was read. A link out of the folder is refused."""
    item = tmp_path / "item"
    shutil.copytree(FIXTURES / "newsletter", item)
    outside = tmp_path / "elsewhere" / name
    outside.parent.mkdir()
    (item / name).rename(outside)  # a valid file, so only the link itself can be the problem
    (item / name).symlink_to(outside)
    with pytest.raises(ContentInvalid) as refused:
        load_item(item)
    assert [(p.file, p.line) for p in refused.value.problems] == [(item.resolve() / name, 1)]
    assert "a symbolic link out of the item folder" in refused.value.problems[0].message


def test_a_link_within_the_item_folder_is_followed(tmp_path):
    item = tmp_path / "item"
    shutil.copytree(FIXTURES / "newsletter", item)
    (item / "en.md").rename(item / "english.md")
    (item / "en.md").symlink_to("english.md")
    assert load_item(item).text("en").front.subject == load_item(FIXTURES / "newsletter").text("en").front.subject
