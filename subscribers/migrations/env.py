"""Alembic environment: runs on the connection `subscribers.db.migrate` hands over, or on
HERALD_DATABASE_URL when a developer runs `alembic -c subscribers/migrations/alembic.ini …`."""

from __future__ import annotations

from alembic import context

import worker.models  # noqa: F401 - the engine's tables share the one schema and its migrations
from subscribers.models import Base


def run(connection) -> None:  # noqa: ANN001 - a SQLAlchemy Connection
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    from subscribers.db import create
    from worker.settings import load_settings

    with create(load_settings().database_url).begin() as fresh:
        run(fresh)
