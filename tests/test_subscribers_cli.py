"""`herald subscribers` and `herald segments` as an operator runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foundation.settings import PROJECT_ROOT
from subscribers import store
from subscribers.models import Subscriber
from subscribers.segments import load_segments, members
from subscribers.topics import load_topics
from worker.cli import app

SEGMENTS = load_segments(PROJECT_ROOT / "content", load_topics(PROJECT_ROOT / "content"))


def herald(*args: str, input: str | None = None):  # noqa: A002 - CliRunner's name
    return CliRunner().invoke(app, list(args), input=input, env={"COLUMNS": "200"})


def test_import_prints_how_it_read_the_file_the_counts_and_where_the_report_is(sessions, tmp_path):
    path = tmp_path / "inscrieri.csv"
    path.write_bytes("Nume;Prenume;E-mail;Ţara\nPopa;Ştefan;stefan@example.org;RO\n;;nu-e-adresa;RO\n".encode("cp1250"))
    result = herald("subscribers", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "Read as Windows-1250, delimiter ';', 2 row(s)." in result.stdout
    assert re.search(r"│\s+1 │\s+0 │\s+0 │\s+1 │", result.stdout)  # imported, updated, unchanged, skipped
    assert "'nu-e-adresa' is not a valid email address" in result.stdout
    assert "inscrieri.report.csv" in result.stdout and (tmp_path / "inscrieri.report.csv").exists()
    with sessions() as session:
        assert store.find(session, "stefan@example.org").name == "Ștefan Popa"


def test_import_says_how_it_read_each_column_and_who_is_left_pending(sessions, tmp_path):
    path = tmp_path / "inscrieri.csv"
    path.write_text("Nume;Prenume;E-mail;Ţara;Rol în proiect;Created at;Acord\n"
                    "Popa;Ana;ana@example.org;RO;expert;2026-01-01;Da\n"
                    "Pop;Ion;ion@example.org;RO;;;\n", encoding="utf-8")
    result = herald("subscribers", "import", str(path), "--consent-source", "Paper form")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "Read as UTF-8, delimiter ';', 2 row(s).",
        ("Columns read: 'Nume' as last_name, 'Prenume' as first_name, 'E-mail' as email, 'Ţara' as country, "
         "'Acord' as consent."),
        "Kept as custom attributes, for segments: 'Rol în proiect' as rol_in_proiect.",
        "Left out: 'Created at'."], result.stdout
    assert "1 person left pending for lack of consent: mailed nothing but a request to confirm until they do." \
        in lines, result.stdout
    assert re.search(r"│\s+3 │ ion@example\.org\s+│ pending: the consent column is empty\s+│", result.stdout)


def test_a_bad_map_or_a_missing_file_is_refused_with_the_fix(sessions, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text("Adresa\nana@example.org\n", encoding="utf-8")
    result = herald("subscribers", "import", str(path), "--map", "Adresa:email")
    assert result.exit_code == 2 and "write 'Column header=field'" in result.output
    result = herald("subscribers", "import", str(path))
    assert result.exit_code == 1 and "no email column; name one with --map" in result.output
    assert "Nothing was imported." in result.output
    assert herald("subscribers", "import", str(path), "--map", "Adresa=email").exit_code == 0
    result = herald("subscribers", "import", str(tmp_path / "missing.csv"))
    assert result.exit_code == 2 and "is not a file" in result.output


def test_export_streams_a_segment_and_re_importing_the_export_changes_nothing(sessions, tmp_path):
    assert herald("subscribers", "import", "--sample").exit_code == 0
    everyone, climate = tmp_path / "everyone.csv", tmp_path / "climate.csv"
    assert herald("subscribers", "export", "--out", str(everyone)).exit_code == 0
    assert herald("subscribers", "export", "--segment", "topic-climate-neutral-cities", "--out", str(climate)).exit_code == 0
    with sessions() as session:
        total = store.count(session)
        expected = [s.email for page in store.pages(session, members(SEGMENTS["topic-climate-neutral-cities"]))
                    for s in page]
    rows = list(csv.DictReader(climate.open(encoding="utf-8")))
    assert [row["email"] for row in rows] == expected and expected
    assert all("climate-neutral-cities" in row["topics"] and row["status"] == "confirmed" for row in rows)
    assert sum(1 for _ in csv.DictReader(everyone.open(encoding="utf-8"))) == total == 300

    result = herald("subscribers", "import", str(everyone))
    assert result.exit_code == 0, result.output
    assert re.search(r"│\s+0 │\s+0 │\s+300 │\s+0 │", result.stdout)


def test_an_unsubscribed_person_from_another_tool_stays_unsubscribed(sessions, tmp_path):
    path = tmp_path / "old-tool.csv"
    path.write_text("email,status,consent\nana@example.org,unsubscribed,yes\nion@example.org,subscribed,yes\n",
                    encoding="utf-8")
    assert herald("subscribers", "import", str(path), "--consent-source", "old tool").exit_code == 0
    with sessions() as session:
        ana, ion = store.find(session, "ana@example.org"), store.find(session, "ion@example.org")
        assert (ana.status, ana.unsubscribed_at is not None, ana.confirmed_at) == ("unsubscribed", True, None)
        assert ion.status == "confirmed"
    path.write_text("email,status\nion@example.org,complained\n", encoding="utf-8")
    assert herald("subscribers", "import", str(path)).exit_code == 0
    with sessions() as session:
        assert store.find(session, "ion@example.org").status == "complained"


def test_segments_list_and_show_count_with_a_breakdown(sessions):
    assert herald("subscribers", "import", "--sample").exit_code == 0
    with sessions() as session:
        counts = {name: store.count(session, members(segment)) for name, segment in SEGMENTS.items()}
    listed = herald("segments", "list")
    assert listed.exit_code == 0
    for name, count in counts.items():
        assert re.search(rf"{name}\s+│\s+{count:,}\s", listed.stdout), name
    shown = herald("segments", "show", "partners-abroad", "--sample", "3")
    assert shown.exit_code == 0
    assert f"partners-abroad: {counts['partners-abroad']:,} subscriber(s)" in shown.stdout
    total_row = re.search(r"│ total\s+│(.*)│\s+(\d+) │", shown.stdout)
    assert int(total_row.group(2)) == counts["partners-abroad"]
    assert "First 3" in shown.stdout
    unknown = herald("segments", "show", "nobody")
    assert unknown.exit_code == 2 and "No segment 'nobody'" in unknown.output


@pytest.mark.parametrize("answer", ["n\n", "y\n"])
def test_erase_asks_first(sessions, tmp_path, answer):
    path = tmp_path / "one.csv"
    path.write_text("email\nana@example.org\n", encoding="utf-8")
    herald("subscribers", "import", str(path))
    result = herald("subscribers", "erase", "ana@example.org", input=answer)
    assert "Erase ana@example.org for good?" in result.output
    with sessions() as session:
        assert (store.find(session, "ana@example.org") is None) == (answer == "y\n")
    shown = herald("subscribers", "show", "ana@example.org")
    assert shown.exit_code == (1 if answer == "y\n" else 0)


def test_export_to_standard_output_is_csv(sessions, tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("email,name,rol\nana@example.org,Ana,expert\n", encoding="utf-8")
    herald("subscribers", "import", str(path))
    rows = list(csv.DictReader(io.StringIO(herald("subscribers", "export").stdout)))
    assert [(row["email"], row["name"], row["status"], row["attributes"]) for row in rows] == [
        ("ana@example.org", "Ana", "pending", '{"rol": "expert"}')]
    assert Path(tmp_path / "one.report.csv").exists()


def test_a_long_name_and_a_nul_neither_stop_the_import_nor_reach_the_store_as_given(sessions, tmp_path):
    """Seen on PostgreSQL: a 300-character name (StringDataRightTruncation) or a NUL ("text fields cannot contain
    NUL") aborted the whole import with a traceback, and none of the good rows were imported."""
    limit = Subscriber.__table__.c["name"].type.length
    path = tmp_path / "form.csv"
    path.write_text(f"email,name\nana@example.org,{'A' * 300}\nion@example.org,I\x00on\nradu@example.org,Radu\n",
                    encoding="utf-8")
    result = herald("subscribers", "import", str(path))
    assert result.exit_code == 0 and result.exception is None, result.output
    assert re.search(r"│\s+3 │\s+0 │\s+0 │\s+0 │", result.stdout)
    assert f"name cut to {limit} characters (the file has 300)" in result.stdout
    with sessions() as session:
        assert store.find(session, "ana@example.org").name == "A" * limit
        assert store.find(session, "ion@example.org").name == "Ion"
        assert store.find(session, "radu@example.org").name == "Radu"
