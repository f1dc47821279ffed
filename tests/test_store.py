"""The subscriber store on SQLite and PostgreSQL: schema, uniqueness, time stamps, keyset streaming."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from foundation.db import create, migrate
from foundation.tables import Base
from subscribers import store
from subscribers.models import Subscriber
from subscribers.profile import email_hash, email_key

NOW = datetime(2027, 1, 15, 9, 30, tzinfo=UTC)


def person(email: str, **fields: object) -> Subscriber:
    values = dict(email=email.strip(), email_key=email_key(email), email_hash=email_hash("k", email),
                  language="ro", status="confirmed", created_at=NOW, updated_at=NOW)
    return Subscriber(**(values | fields))


def test_migrations_build_exactly_the_models_tables(sessions):
    engine = sessions.kw["bind"]
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    for table in Base.metadata.tables.values():
        assert {column["name"] for column in inspector.get_columns(table.name)} == set(table.columns.keys())
    migrate(engine)  # a second run is a no-op
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "0006"


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_secure_delete(tmp_path):
    engine = create(f"sqlite:///{tmp_path / 'x' / 'herald.sqlite3'}")
    migrate(engine)
    with engine.connect() as connection:
        assert connection.scalar(text("PRAGMA journal_mode")) == "wal"
        assert connection.scalar(text("PRAGMA foreign_keys")) == 1
        assert connection.scalar(text("PRAGMA secure_delete")) == 1


def test_an_address_is_one_person_whatever_its_case_and_spaces(sessions):
    with sessions.begin() as session:
        session.add(person("Ana.Pop@Cluj.example.org"))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(person(" ana.pop@cluj.EXAMPLE.org "))
    with sessions() as session:
        assert store.find(session, "  ANA.POP@cluj.example.org").email == "Ana.Pop@Cluj.example.org"


def test_time_stamps_come_back_aware_and_in_utc(sessions):
    bucharest = timezone(timedelta(hours=2))
    with sessions.begin() as session:
        session.add(person("a@example.org", confirmed_at=datetime(2027, 1, 15, 11, 30, tzinfo=bucharest)))
    with sessions() as session:
        stored = session.scalar(select(Subscriber))
    assert stored.created_at == NOW and stored.created_at.tzinfo == UTC
    assert stored.confirmed_at == NOW


def test_unknown_language_or_status_is_refused_by_the_database(sessions):
    for wrong in ({"language": "fr"}, {"status": "deleted"}, {"organisation_type": "club"}):
        with pytest.raises(IntegrityError), sessions.begin() as session:
            session.add(person("x@example.org", **wrong))


def test_pages_stream_every_match_once_in_id_order(sessions):
    with sessions.begin() as session:
        session.add_all(person(f"p{n}@example.org", language="en" if n % 3 else "ro") for n in range(25))
    with sessions() as session:
        pages = list(store.pages(session, Subscriber.language == "en", size=4))
    assert [len(page) for page in pages] == [4, 4, 4, 4]
    assert [s.email for page in pages for s in page] == [f"p{n}@example.org" for n in range(25) if n % 3]


def test_the_data_folder_database_and_generated_key_are_readable_by_their_owner_only(tmp_path, monkeypatch):
    """They hold every subscriber's address and the key to every link: no other user of the machine reads them."""
    import stat

    from foundation.settings import load_settings

    data = tmp_path / "fresh" / "data"
    monkeypatch.setenv("HERALD_DATA_DIR", str(data))
    monkeypatch.delenv("HERALD_SECRET_KEY")
    monkeypatch.delenv("HERALD_DATABASE_URL", raising=False)
    settings = load_settings()
    engine = create(settings.database_url)
    migrate(engine)
    with engine.begin() as connection:  # a write, so the write-ahead log exists
        connection.execute(text("INSERT INTO topics (slug, name_ro, name_en) VALUES ('t', 'T', 'T')"))
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in data.iterdir()}
    engine.dispose()
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert modes == {"secret.key": 0o600, "herald.sqlite3": 0o600, "herald.sqlite3-wal": 0o600,
                     "herald.sqlite3-shm": 0o600}
