"""Access and erasure: everything held about a person comes out, and after `erase` nothing of them stays."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import MetaData, select
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from foundation.settings import PROJECT_ROOT
from subscribers import store
from subscribers.importer import Options, import_csv
from subscribers.models import Suppression
from subscribers.profile import email_hash
from subscribers.segments import AllOf, Segment, select_ids
from subscribers.topics import load_topics
from worker.cli import app

NOW = datetime(2027, 1, 15, 9, 30, tzinfo=UTC)
KEY = "test-secret-key"
EVERYONE = Segment("everyone", "", AllOf(()))

# Values only the erased person has, so finding any of them anywhere means something survived.
ZAMFIRA = {"email": "Zamfira.Unicescu@zambet-unic.example.org", "name": "Zamfira Unicescu",
           "organisation": "Asociația Zâmbet Unic", "city": "Sânpetru-Unic", "role": "mentor-zambet-unic"}
PEOPLE = (
    "email,name,organisation,organisation type,city,country,topics,role,consent\n"
    f"{ZAMFIRA['email']},{ZAMFIRA['name']},{ZAMFIRA['organisation']},ONG,{ZAMFIRA['city']},RO,"
    f"Rețele de transfer;Inovare digitală,{ZAMFIRA['role']},da\n"
    "ion.pop@primaria.example.org,Ion Pop,Primăria Iași,Primărie,Iași,RO,Apeluri de proiecte,,da\n"
)


def _import(sessions, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(PEOPLE, encoding="utf-8")
    import_csv(sessions, path, load_topics(PROJECT_ROOT / "content"), KEY,
               Options(now=NOW, consent_source="Info day form", consent_version="v3"))


def test_show_json_gives_everything_held_about_one_person(sessions, tmp_path):
    _import(sessions, tmp_path)
    result = CliRunner().invoke(app, ["subscribers", "show", " ZAMFIRA.unicescu@zambet-unic.example.org", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert {key: record[key] for key in ("email", "name", "organisation", "organisation_type", "city", "country",
                                         "timezone", "language", "status", "attributes", "suppressed")} == {
        "email": ZAMFIRA["email"], "name": ZAMFIRA["name"], "organisation": ZAMFIRA["organisation"],
        "organisation_type": "ngo", "city": ZAMFIRA["city"], "country": "RO", "timezone": "Europe/Bucharest",
        "language": "ro", "status": "confirmed", "attributes": {"role": ZAMFIRA["role"]}, "suppressed": False}
    assert record["topics"] == [
        {"slug": "digital-innovation", "ro": "Inovare digitală", "en": "Digital innovation"},
        {"slug": "transfer-networks", "ro": "Rețele de transfer", "en": "Transfer networks"},
    ]
    assert record["consents"] == [{
        "purpose": "newsletters and event invitations (topics: digital-innovation, transfer-networks)",
        "text_version": "v3", "given_at": NOW.isoformat(), "channel": "import", "source": "Info day form"}]
    assert record["status_history"]["confirmed_at"] == NOW.isoformat()
    assert record["status_history"]["unsubscribed_at"] is None


def _every_value(engine) -> list[str]:
    """Every cell of every table, as text: what a person reading the database would find."""
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as connection:
        return [str(value) for table in tables.sorted_tables
                for row in connection.execute(select(table)) for value in row]


def test_erase_leaves_no_personal_data_anywhere_and_the_address_is_never_selected_again(sessions, db_settings, tmp_path):
    _import(sessions, tmp_path)
    engine = sessions.kw["bind"]
    assert any(ZAMFIRA["organisation"] in value for value in _every_value(engine))

    result = CliRunner().invoke(app, ["subscribers", "erase", ZAMFIRA["email"].upper(), "--yes"])
    assert result.exit_code == 0, result.output

    values = _every_value(engine)
    for secret in (*ZAMFIRA.values(), ZAMFIRA["email"].lower(), "zamfira"):
        assert not [value for value in values if secret.casefold() in value.casefold()], secret
    url = make_url(db_settings.database_url)
    if url.get_backend_name() == "sqlite":  # not even in freed pages or the write-ahead log
        for path in Path(url.database).parent.glob("herald.sqlite3*"):
            raw = path.read_bytes()
            for secret in ("zambet-unic", "Zamfira", "Unicescu"):
                assert secret.encode() not in raw, (path.name, secret)
    with sessions() as session:
        assert list(session.scalars(select(Suppression.email_hash))) == [email_hash(KEY, ZAMFIRA["email"])]
        assert [store.find(session, "ion.pop@primaria.example.org").id] == list(session.scalars(select_ids(EVERYONE)))

    _import(sessions, tmp_path)  # the same file again: everyone else unchanged, she stays out
    with sessions() as session:
        assert store.find(session, ZAMFIRA["email"]) is None
        assert store.count(session) == 1
    assert "suppression list" in (tmp_path / "people.report.csv").read_text(encoding="utf-8")


def test_a_suppressed_subscriber_is_not_mailable_whatever_the_segment(sessions, tmp_path):
    _import(sessions, tmp_path)
    with sessions.begin() as session:
        store.suppress(session, KEY, "ION.POP@primaria.example.org ", "complained", NOW)
    with sessions() as session:
        assert store.find(session, "ion.pop@primaria.example.org").status == "confirmed"
        assert store.find(session, "ion.pop@primaria.example.org").id not in set(session.scalars(select_ids(EVERYONE)))
        assert len(list(session.scalars(select_ids(EVERYONE)))) == 1
