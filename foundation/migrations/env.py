"""Alembic environment: runs on the connection `foundation.db.migrate` hands over, or on HERALD_DATABASE_URL when
a developer runs `alembic -c foundation/migrations/alembic.ini ...`.

Alembic runs this script; nothing of Herald imports it. To compare the whole schema with the models when a
developer autogenerates a migration, it loads both sides' tables: the one place below the two sides that
names them, which is why the layout test leaves migrations out of the foundation's rule.
"""

from __future__ import annotations

from alembic import context

import subscribers.models  # noqa: F401 - the people's tables
import worker.campaigns.models  # noqa: F401 - the engine's tables share the one schema and its migrations
from foundation.tables import Base


def run(connection) -> None:  # noqa: ANN001 - a SQLAlchemy Connection
    context.configure(connection=connection, target_metadata=Base.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    from foundation.db import create
    from foundation.settings import load_settings

    with create(load_settings().database_url).begin() as fresh:
        run(fresh)
