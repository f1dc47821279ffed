"""installation id, why a campaign repeats another

Revision ID: 0006
Revises: 0005

One row naming this installation (a random id): Celery's queue and Redis keys are namespaced by it, so
two Heralds on one machine or one Redis never share work. A campaign that mails an item's message to an
audience again, on purpose (`--again`), records why.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    installation = op.create_table('installation',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    now = datetime.now(UTC)
    op.bulk_insert(installation, [{'id': secrets.token_hex(6),
                                   'created_at': now if op.get_bind().dialect.name != 'sqlite' else now.replace(tzinfo=None)}])
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.add_column(sa.Column('repeat_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.drop_column('repeat_reason')
    op.drop_table('installation')
