"""link keys, ids never reused, message keys

Revision ID: 0005
Revises: 0004

Every subscriber gets a random link key, which signed links carry from now on (subscribers.tokens), and
on SQLite the subscribers table becomes AUTOINCREMENT, so the id of an erased person is never handed
to the next one (PostgreSQL's sequence never did). Campaigns get the random part of their Message-IDs.
The table is rebuilt on SQLite with foreign keys off (subscribers.db.migrate), so nothing cascades.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

# 64 random bits, as hex, from each database's own strong source.
_RANDOM_KEY = {"sqlite": "lower(hex(randomblob(8)))", "postgresql": "substr(md5(gen_random_uuid()::text), 1, 16)"}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_key', sa.String(length=16), nullable=True))
    op.add_column('subscribers', sa.Column('link_key', sa.String(length=16), nullable=True))
    op.execute(f"UPDATE subscribers SET link_key = {_RANDOM_KEY[dialect]}")
    with op.batch_alter_table('subscribers', schema=None, recreate='always' if dialect == 'sqlite' else 'auto',
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.alter_column('link_key', existing_type=sa.String(length=16), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_column('link_key')
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('message_key')
