"""S/MIME sealed once: the CMS an email disclosure goes as, kept in its outbox row

Revision ID: 0010_smime_sealed_once
Revises: 0009_notice_retention
Create Date: 2026-12-04 21:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010_smime_sealed_once'
down_revision: str | None = '0009_notice_retention'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: nothing to fill, and no table rewrite.
    with op.batch_alter_table('outbox', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('smime_cms', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('smime_cert', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('smime_cert')
        batch_op.drop_column('smime_cms')
