"""Outbox parts: a large envelope is stored in parts, not as one value

Revision ID: 0012_outbox_parts
Revises: 0011_smime_council_cert
Create Date: 2026-12-05 00:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012_outbox_parts'
down_revision: str | None = '0011_smime_council_cert'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None, recreate='never') as batch_op:
        batch_op.add_column(
            sa.Column('parts', sa.Integer(), server_default='0', nullable=False)
        )
    op.create_table(
        'outbox_parts',
        sa.Column('disclosure_id', sa.String(length=64), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('part', sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ['disclosure_id'], ['outbox.disclosure_id'], ondelete='CASCADE'
        ),
        sa.PrimaryKeyConstraint('disclosure_id', 'seq'),
    )


def downgrade() -> None:
    op.drop_table('outbox_parts')
    with op.batch_alter_table('outbox', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('parts')
