"""receipts: ids scoped per partner, late receipts; disclosures: the envelope's exp

Revision ID: 0003_audit_integrity
Revises: 0002
Create Date: 2026-12-04 14:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003_audit_integrity'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('disclosures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('partner_id', sa.String(length=120), nullable=True))
        batch_op.add_column(
            sa.Column('late', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    # Every receipt so far was verified against the partner of the disclosure it names.
    op.execute(
        'UPDATE receipts SET partner_id = '
        '(SELECT partner_id FROM disclosures WHERE disclosures.id = receipts.disclosure_id)'
    )
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.alter_column('partner_id', existing_type=sa.String(length=120), nullable=False)
        batch_op.drop_constraint('pk_receipts', type_='primary')
        batch_op.create_primary_key('pk_receipts', ['partner_id', 'receipt_id'])


def downgrade() -> None:
    # Two partners may now share a receipt id; the older key cannot hold both, so keep the first.
    op.execute(
        'DELETE FROM receipts WHERE EXISTS (SELECT 1 FROM receipts AS earlier '
        'WHERE earlier.receipt_id = receipts.receipt_id '
        'AND (earlier.received_at < receipts.received_at OR (earlier.received_at = '
        'receipts.received_at AND earlier.partner_id < receipts.partner_id)))'
    )
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_constraint('pk_receipts', type_='primary')
        batch_op.create_primary_key('pk_receipts', ['receipt_id'])
        batch_op.drop_column('late')
        batch_op.drop_column('partner_id')
    # Natively (SQLite 3.35+): a copy-and-swap of `disclosures` is refused while rows name it.
    with op.batch_alter_table('disclosures', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('expires_at')
