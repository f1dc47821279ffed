"""Opening the store: one engine per database URL, SQLite tuned for safety, schema migrated to head.

SQLite (the default, a file in the data directory) runs in WAL mode so the web side reads while
a campaign writes, with foreign keys on and `secure_delete` so erased people leave no bytes in
free pages. `HERALD_DATABASE_URL=postgresql://…` selects PostgreSQL through psycopg 3.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from worker.settings import Settings, private_dir

MIGRATIONS = Path(__file__).parent / "migrations"


def database_url(raw: str) -> URL:
    """`postgresql://` means psycopg 3 here, whatever SQLAlchemy's default driver is."""
    url = make_url(raw)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def _tune_sqlite(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API objects are untyped
    cursor = dbapi_connection.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "secure_delete=ON",
                   "busy_timeout=10000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _private_sqlite_file(path: Path) -> None:
    """The database file created readable by its owner only, before SQLite opens it (its -wal and -shm files
    take the same mode): it holds every subscriber's address."""
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def create(url: str | URL) -> Engine:
    url = database_url(str(url)) if isinstance(url, str) else url
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            _private_sqlite_file(Path(url.database))
        engine = create_engine(url)
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is there already).

    On SQLite, foreign keys are off while migrating: a migration that rebuilds a table drops the old
    one, and with them on, that drop would cascade into every row that refers to it. They are checked
    before being turned on again.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if sqlite:
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # outside a transaction, or SQLite ignores it
            connection.commit()
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all() if sqlite else []
                if broken:
                    raise RuntimeError(f"the migration left rows that refer to nothing: {broken[:5]}")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


def open_store(settings: Settings) -> sessionmaker[Session]:
    """The session factory every command and task uses; migrates on first open."""
    engine = create(settings.database_url)
    migrate(engine)
    return sessionmaker(engine, expire_on_commit=False)
