"""S/MIME council certificate: the council signer a kept CMS was signed with

Revision ID: 0011_smime_council_cert
Revises: 0010_smime_sealed_once
Create Date: 2026-12-04 22:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011_smime_council_cert'
down_revision: str | None = '0010_smime_sealed_once'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: a CMS kept before this has no signer on record, so it is made again once.
    with op.batch_alter_table('outbox', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('smime_signer', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('smime_signer')
