"""The content format's parsing rules that editors rely on."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.conftest import FIXTURES
from worker.content import load_item
from worker.settings import PROJECT_ROOT
from worker.markdown import LinkList, to_text
from worker.yamldoc import parse_yaml


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
