"""approvers: registered approvers per agreement; approvals record login, role, narrowing

Revision ID: 0005_approvers
Revises: 0004_fields_refused
Create Date: 2026-12-05 09:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005_approvers'
down_revision: str | None = '0004_fields_refused'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        'approvers',
        sa.Column('name_key', sa.String(length=200), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('role', sa.String(length=40), nullable=True),
        sa.Column('agreements', _JSON, nullable=False),
        sa.Column('added_by', sa.String(length=200), nullable=False),
        sa.Column('added_at', _AT, nullable=False),
        sa.PrimaryKeyConstraint('name_key', name=op.f('pk_approvers')),
    )
    # Nullable: decisions recorded before this revision have none of these.
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('login', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('role', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('fields_granted', _JSON, nullable=True))


def downgrade() -> None:
    # SQLite drops these natively (3.35+); copying `approvals` would fight its foreign key.
    with op.batch_alter_table('approvals', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('fields_granted')
        batch_op.drop_column('role')
        batch_op.drop_column('login')
    op.drop_table('approvers')
