"""client credentials: bearer token expiry and a client certificate's fingerprint

Revision ID: 0006_client_credentials
Revises: 0005_approvers
Create Date: 2026-12-04 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006_client_credentials'
down_revision: str | None = '0005_approvers'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns: existing clients keep tokens that never expire and have no certificate.
    with op.batch_alter_table('clients', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('token_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('cert_sha256', sa.String(length=64), nullable=True))
    op.create_index('ix_clients_cert_sha256', 'clients', ['cert_sha256'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_clients_cert_sha256', table_name='clients')
    with op.batch_alter_table('clients', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('cert_sha256')
        batch_op.drop_column('token_expires_at')
