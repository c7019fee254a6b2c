"""Article 19 notices: how long each notice record is kept

Revision ID: 0009_notice_retention
Revises: 0008_subject_notices
Create Date: 2026-12-04 21:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009_notice_retention'
down_revision: str | None = '0008_subject_notices'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: a notice recorded before this is kept for the records schedule alone.
    with op.batch_alter_table('subject_notices', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('retain_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('subject_notices', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('retain_until')
