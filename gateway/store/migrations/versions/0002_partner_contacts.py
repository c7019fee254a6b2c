"""partner contacts: ODS code, ICO registration, contact and DPO contact

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 08:50:52.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('partners', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ods_code', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('ico_registration', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('contact', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('dpo_contact', sa.String(length=320), nullable=True))


def downgrade() -> None:
    # SQLite drops these natively (3.35+): batch mode's default copy-and-swap of `partners`
    # would DROP TABLE partners, which foreign_keys=ON refuses while partner_keys names it.
    with op.batch_alter_table('partners', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('dpo_contact')
        batch_op.drop_column('contact')
        batch_op.drop_column('ico_registration')
        batch_op.drop_column('ods_code')
