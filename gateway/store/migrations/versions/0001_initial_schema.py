"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 23:57:55.802315
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Migrations spell types out instead of importing gateway.store.tables, so they never drift.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
GENESIS = '0' * 64  # prev_hash of the first audit entry


def upgrade() -> None:
    op.create_table('agreements',
    sa.Column('id', sa.String(length=120), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('partner_id', sa.String(length=120), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('effective_to', sa.Date(), nullable=True),
    sa.Column('review_due', sa.Date(), nullable=True),
    sa.Column('document', JSON, nullable=False),
    sa.Column('content_hash', sa.String(length=100), nullable=False),
    sa.Column('applied_by', sa.String(length=120), nullable=False),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', 'version', name=op.f('pk_agreements'))
    )
    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agreements_partner_id'), ['partner_id'], unique=False)

    op.create_table('audit_checkpoints',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kid', sa.String(length=200), nullable=False),
    sa.Column('token', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_checkpoints'))
    )
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_head'))
    )
    op.execute(sa.text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, :h)").bindparams(h=GENESIS))
    op.create_table('audit_log',
    sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_kind', sa.String(length=20), nullable=False),
    sa.Column('actor_name', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('targets', sa.Text(), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_audit_log'))
    )
    op.create_table('audit_pending',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_kind', sa.String(length=20), nullable=False),
    sa.Column('actor_name', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('targets', sa.Text(), nullable=False),
    sa.Column('details', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_pending'))
    )
    op.create_table('clients',
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('allowed_agreements', JSON, nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_clients')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_clients_token_hash'))
    )
    op.create_table('council_keys',
    sa.Column('kid', sa.String(length=200), nullable=False),
    sa.Column('alg', sa.String(length=40), nullable=False),
    sa.Column('use', sa.String(length=3), nullable=False),
    sa.Column('jwk', JSON, nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_until', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_council_keys'))
    )
    op.create_table('disclosures',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('client', sa.String(length=120), nullable=False),
    sa.Column('agreement_id', sa.String(length=120), nullable=False),
    sa.Column('agreement_version', sa.Integer(), nullable=False),
    sa.Column('partner_id', sa.String(length=120), nullable=False),
    sa.Column('purpose', sa.String(length=60), nullable=False),
    sa.Column('lawful_basis', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('subject_nhs_index', sa.String(length=64), nullable=True),
    sa.Column('subject_local_index', sa.String(length=64), nullable=True),
    sa.Column('fields_sent', JSON, nullable=False),
    sa.Column('fields_removed', JSON, nullable=False),
    sa.Column('requested_by_user', sa.String(length=200), nullable=False),
    sa.Column('requested_by_role', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('decision_reasons', JSON, nullable=False),
    sa.Column('approver', sa.String(length=200), nullable=True),
    sa.Column('key_ids', JSON, nullable=False),
    sa.Column('digest', sa.String(length=100), nullable=True),
    sa.Column('retain_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('envelope_purged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disclosures'))
    )
    with op.batch_alter_table('disclosures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disclosures_client'), ['client'], unique=False)
        batch_op.create_index('ix_disclosures_created_at', ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_disclosures_partner_id'), ['partner_id'], unique=False)
        batch_op.create_index('ix_disclosures_retain_until_status', ['retain_until', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_disclosures_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_disclosures_subject_local_index'), ['subject_local_index'], unique=False)
        batch_op.create_index(batch_op.f('ix_disclosures_subject_nhs_index'), ['subject_nhs_index'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('client', sa.String(length=120), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('response', JSON, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('client', 'key', name=op.f('pk_idempotency_keys'))
    )
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.create_index('ix_idempotency_keys_created_at', ['created_at'], unique=False)

    op.create_table('optouts',
    sa.Column('nhs_index', sa.String(length=64), nullable=False),
    sa.Column('list_version', sa.String(length=60), nullable=False),
    sa.Column('loaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('nhs_index', name=op.f('pk_optouts'))
    )
    op.create_table('partners',
    sa.Column('id', sa.String(length=120), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('target', JSON, nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partners'))
    )
    op.create_table('approvals',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('disclosure_id', sa.String(length=64), nullable=False),
    sa.Column('facts', JSON, nullable=False),
    sa.Column('decision', sa.String(length=20), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['disclosure_id'], ['disclosures.id'], name=op.f('fk_approvals_disclosure_id_disclosures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_approvals'))
    )
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_approvals_disclosure_id'), ['disclosure_id'], unique=False)

    op.create_table('disclosure_events',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('disclosure_id', sa.String(length=64), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('detail', JSON, nullable=False),
    sa.ForeignKeyConstraint(['disclosure_id'], ['disclosures.id'], name=op.f('fk_disclosure_events_disclosure_id_disclosures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disclosure_events'))
    )
    with op.batch_alter_table('disclosure_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disclosure_events_disclosure_id'), ['disclosure_id'], unique=False)

    op.create_table('held_records',
    sa.Column('disclosure_id', sa.String(length=64), nullable=False),
    sa.Column('ciphertext', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['disclosure_id'], ['disclosures.id'], name=op.f('fk_held_records_disclosure_id_disclosures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('disclosure_id', name=op.f('pk_held_records'))
    )
    op.create_table('outbox',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('disclosure_id', sa.String(length=64), nullable=False),
    sa.Column('partner_id', sa.String(length=120), nullable=False),
    sa.Column('envelope', sa.LargeBinary(), nullable=False),
    sa.Column('digest', sa.String(length=100), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('lease_owner', sa.String(length=120), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['disclosure_id'], ['disclosures.id'], name=op.f('fk_outbox_disclosure_id_disclosures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('disclosure_id', name=op.f('uq_outbox_disclosure_id'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_state_available_at', ['state', 'available_at'], unique=False)

    op.create_table('partner_keys',
    sa.Column('partner_id', sa.String(length=120), nullable=False),
    sa.Column('kid', sa.String(length=200), nullable=False),
    sa.Column('use', sa.String(length=3), nullable=False),
    sa.Column('alg', sa.String(length=40), nullable=False),
    sa.Column('jwk', JSON, nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('revoked_reason', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_partner_keys_partner_id_partners')),
    sa.PrimaryKeyConstraint('partner_id', 'kid', name=op.f('pk_partner_keys'))
    )
    op.create_table('receipts',
    sa.Column('receipt_id', sa.String(length=200), nullable=False),
    sa.Column('disclosure_id', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('token', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('verified_kid', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['disclosure_id'], ['disclosures.id'], name=op.f('fk_receipts_disclosure_id_disclosures'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('receipt_id', name=op.f('pk_receipts'))
    )
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_receipts_disclosure_id'), ['disclosure_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_receipts_disclosure_id'))

    op.drop_table('receipts')
    op.drop_table('partner_keys')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_state_available_at')

    op.drop_table('outbox')
    op.drop_table('held_records')
    with op.batch_alter_table('disclosure_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disclosure_events_disclosure_id'))

    op.drop_table('disclosure_events')
    with op.batch_alter_table('approvals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_approvals_disclosure_id'))

    op.drop_table('approvals')
    op.drop_table('partners')
    op.drop_table('optouts')
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.drop_index('ix_idempotency_keys_created_at')

    op.drop_table('idempotency_keys')
    with op.batch_alter_table('disclosures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disclosures_subject_nhs_index'))
        batch_op.drop_index(batch_op.f('ix_disclosures_subject_local_index'))
        batch_op.drop_index(batch_op.f('ix_disclosures_status'))
        batch_op.drop_index('ix_disclosures_retain_until_status')
        batch_op.drop_index(batch_op.f('ix_disclosures_partner_id'))
        batch_op.drop_index('ix_disclosures_created_at')
        batch_op.drop_index(batch_op.f('ix_disclosures_client'))

    op.drop_table('disclosures')
    op.drop_table('council_keys')
    op.drop_table('clients')
    op.drop_table('audit_pending')
    op.drop_table('audit_log')
    op.drop_table('audit_head')
    op.drop_table('audit_checkpoints')
    with op.batch_alter_table('agreements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_agreements_partner_id'))

    op.drop_table('agreements')
