"""Article 19 notices: the notice record, and the kind of each delivered record

Revision ID: 0008_subject_notices
Revises: 0007_partner_certs
Create Date: 2026-12-04 18:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0008_subject_notices'
down_revision: str | None = '0007_partner_certs'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Every existing row is a disclosure; the default fills them without rewriting the table.
    with op.batch_alter_table('disclosures', schema=None, recreate='never') as batch_op:
        batch_op.add_column(
            sa.Column('record_kind', sa.String(length=20), server_default='disclosure', nullable=False)
        )
    op.create_table(
        'subject_notices',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('request_id', sa.String(length=64), nullable=False),
        sa.Column('subject_nhs_index', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('partner_id', sa.String(length=120), nullable=False),
        sa.Column('disclosure_ids', _JSON, nullable=False),
        sa.Column('paths', _JSON, nullable=False),
        sa.Column('corrected_paths', _JSON, nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('not_sent', sa.String(length=60), nullable=True),
        sa.Column('requested_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', _AT, nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_subject_notices')),
    )
    op.create_index(
        op.f('ix_subject_notices_request_id'), 'subject_notices', ['request_id'], unique=False
    )
    op.create_index(
        op.f('ix_subject_notices_subject_nhs_index'),
        'subject_notices',
        ['subject_nhs_index'],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f('ix_subject_notices_subject_nhs_index'), table_name='subject_notices')
    op.drop_index(op.f('ix_subject_notices_request_id'), table_name='subject_notices')
    op.drop_table('subject_notices')
    with op.batch_alter_table('disclosures', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('record_kind')
