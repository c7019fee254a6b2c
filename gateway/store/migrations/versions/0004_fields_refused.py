"""disclosures.fields_refused: permitted fields whose values were refused (path and code)

Revision ID: 0004_fields_refused
Revises: 0003_audit_integrity
Create Date: 2026-12-05 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0004_fields_refused'
down_revision: str | None = '0003_audit_integrity'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    # Nullable: rows recorded before the check existed read back as "none refused".
    with op.batch_alter_table('disclosures', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('fields_refused', JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('disclosures', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('fields_refused')
