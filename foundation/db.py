"""Opening the store: one engine per database URL, SQLite tuned for safety, schema migrated to head.

SQLite (the default, a file in the data directory) runs in WAL mode so the web side reads while
a campaign writes, with foreign keys on and `secure_delete` so erased people leave no bytes in
free pages. `HERALD_DATABASE_URL=postgresql://…` selects PostgreSQL through psycopg 3.

A database that cannot be opened (a server that does not answer, a refused login, a SQLite file in a
folder that does not exist) stops the command in one line that names it and says what to do.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from foundation.settings import Settings, private_dir

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
    """The session factory every command and task uses; migrates on first open.

    Every command opens the store first, so this is where a database that cannot be opened stops it, in one line.
    """
    url = database_url(settings.database_url)
    _folder_exists(url, settings.data_dir)
    engine = create(url)
    try:
        migrate(engine)
    except OperationalError as error:
        engine.dispose()
        reason = " ".join(str(error.orig).split())  # libpq's message runs over several lines
        fix = "check that file" if url.get_backend_name() == "sqlite" else "start its server"
        shown = make_url(settings.database_url).render_as_string(hide_password=True)  # as written, no password
        raise SystemExit(f"The database {shown} cannot be opened ({reason}): "
                         f"{fix}, or fix HERALD_DATABASE_URL.") from None
    return sessionmaker(engine, expire_on_commit=False)


def _folder_exists(url: URL, data_dir: Path) -> None:
    """A SQLite file's folder must exist, or a typo in HERALD_DATABASE_URL would quietly start an empty database;
    only the data folder is made when missing (a fresh clone's `data/`)."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    folder = Path(url.database).expanduser().resolve().parent
    if folder != data_dir.resolve() and not folder.is_dir():
        raise SystemExit(f"HERALD_DATABASE_URL names a SQLite database in {folder}, which does not exist: "
                         "create that folder, or fix HERALD_DATABASE_URL.")
