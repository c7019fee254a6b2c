"""The schema, as SQLAlchemy Core tables; Alembic migrations create exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER only
Json = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out on both backends (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuse naive datetimes; store UTC (naive on SQLite so text comparison stays valid)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass timezone-aware UTC times to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Always aware UTC."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _at(name: str, *, nullable: bool = False) -> Column[Any]:
    return Column(name, UtcDateTime(), nullable=nullable)


agreements = Table(
    "agreements",
    metadata,
    Column("id", String(120), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("status", String(20), nullable=False),
    Column("partner_id", String(120), nullable=False, index=True),
    Column("effective_from", Date, nullable=False),
    Column("effective_to", Date),
    Column("review_due", Date),
    Column("document", Json, nullable=False),
    Column("content_hash", String(100), nullable=False),
    Column("applied_by", String(120), nullable=False),
    _at("applied_at"),
)

partners = Table(
    "partners",
    metadata,
    Column("id", String(120), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("target", Json, nullable=False),  # endpoint URL, MESH mailbox and workflow id, ...
    Column("status", String(20), nullable=False),
    _at("created_at"),
    _at("updated_at"),
    Column("ods_code", String(20)),  # NHS organisation code
    Column("ico_registration", String(40)),
    Column("contact", String(320)),  # an address for the partner's team (catalog `contact`)
    Column("dpo_contact", String(320)),  # their data protection officer, e.g. for an incident
)

partner_keys = Table(
    "partner_keys",
    metadata,
    Column("partner_id", String(120), ForeignKey("partners.id"), primary_key=True),
    Column("kid", String(200), primary_key=True),
    Column("use", String(3), nullable=False),  # sig | enc
    Column("alg", String(40), nullable=False),
    Column("jwk", Json, nullable=False),  # public part only
    _at("not_before"),
    _at("not_after", nullable=True),
    Column("status", String(20), nullable=False),  # active | retired | revoked
    Column("revoked_reason", String(200)),
    _at("created_at"),
)

partner_certs = Table(
    "partner_certs",
    metadata,
    Column("partner_id", String(120), ForeignKey("partners.id"), primary_key=True),
    Column("fingerprint", String(64), primary_key=True),  # SHA-256 of the DER, hex
    Column("subject", String(300), nullable=False),
    Column("emails", Json, nullable=False),
    Column("pem", Text, nullable=False),  # public certificate only
    _at("not_before"),
    _at("not_after"),
    Column("status", String(20), nullable=False),  # active | revoked
    Column("revoked_reason", String(200)),
    _at("revoked_at", nullable=True),
    _at("created_at"),
)

council_keys = Table(
    "council_keys",
    metadata,
    Column("kid", String(200), primary_key=True),
    Column("alg", String(40), nullable=False),
    Column("use", String(3), nullable=False),
    Column("jwk", Json, nullable=False),  # public part only: a mirror for verifying anywhere
    Column("status", String(20), nullable=False),
    _at("created_at"),
    _at("published_until", nullable=True),
)

clients = Table(
    "clients",
    metadata,
    Column("name", String(120), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("allowed_agreements", Json, nullable=False),
    Column("status", String(20), nullable=False),
    _at("created_at"),
    _at("rotated_at", nullable=True),
    _at("token_expires_at", nullable=True),  # None: the token does not expire
    # SHA-256 (hex) of the DER client certificate that authenticates it over mutual TLS.
    Column("cert_sha256", String(64), nullable=True),
    Index("ix_clients_cert_sha256", "cert_sha256", unique=True),
)

disclosures = Table(
    "disclosures",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client", String(120), nullable=False, index=True),
    Column("agreement_id", String(120), nullable=False),
    Column("agreement_version", Integer, nullable=False),
    Column("partner_id", String(120), nullable=False, index=True),
    Column("purpose", String(60), nullable=False),
    Column("lawful_basis", String(500), nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("subject_nhs_index", String(64), index=True),  # HMAC blind index, never the number
    Column("subject_local_index", String(64), index=True),
    Column("fields_sent", Json, nullable=False),
    Column("fields_removed", Json, nullable=False),
    Column("fields_refused", Json),  # [{path, code}]; NULL on rows from before the check
    Column("requested_by_user", String(200), nullable=False),
    Column("requested_by_role", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("decision_reasons", Json, nullable=False),
    Column("approver", String(200)),
    Column("key_ids", Json, nullable=False),
    Column("digest", String(100)),
    _at("retain_until"),
    _at("envelope_purged_at", nullable=True),
    _at("created_at"),
    _at("updated_at"),
    Column("attempts", Integer, nullable=False, default=0),
    _at("next_attempt_at", nullable=True),
    _at("expires_at", nullable=True),  # the envelope's exp: a receipt after it is late
    # `disclosure`, or `notice`: an Article 19 notice delivered (and receipted) the same way,
    # which is no disclosure of data and is left out of disclosure logs and counts.
    Column("record_kind", String(20), nullable=False, server_default="disclosure"),
    Index("ix_disclosures_retain_until_status", "retain_until", "status"),
    Index("ix_disclosures_created_at", "created_at"),
)


def _disclosure_fk() -> ForeignKey:
    """Rows that belong to a disclosure go when its metadata row is finally deleted."""
    return ForeignKey("disclosures.id", ondelete="CASCADE")


disclosure_events = Table(
    "disclosure_events",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("disclosure_id", String(64), _disclosure_fk(), index=True),
    _at("at"),
    Column("type", String(40), nullable=False),
    Column("detail", Json, nullable=False),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "disclosure_id",
        String(64),
        _disclosure_fk(),
        nullable=False,
        unique=True,
    ),
    Column("partner_id", String(120), nullable=False),
    Column("envelope", LargeBinary, nullable=False),  # compact JWE, encrypted to the partner
    # 0: the envelope is in `envelope`; n: it is in n rows of outbox_parts (a large one).
    Column("parts", Integer, nullable=False, server_default="0"),
    Column("digest", String(100), nullable=False),
    # Email to an S/MIME partner: the CMS made once (for this certificate), sent on every attempt.
    Column("smime_cms", LargeBinary, nullable=True),
    Column("smime_cert", String(100), nullable=True),
    Column("smime_signer", String(100), nullable=True),  # the council certificate that signed it
    Column("state", String(20), nullable=False),  # pending | published | delivered
    Column("lease_owner", String(120)),
    _at("lease_until", nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    _at("available_at"),
    _at("created_at"),
    _at("published_at", nullable=True),
    Index("ix_outbox_state_available_at", "state", "available_at"),
)

outbox_parts = Table(
    "outbox_parts",
    metadata,
    Column(
        "disclosure_id",
        String(64),
        ForeignKey("outbox.disclosure_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True),
    Column("part", LargeBinary, nullable=False),
)

receipts = Table(
    "receipts",
    metadata,
    # A receipt id is the partner's own (its `jti`): unique per partner, not across partners.
    Column("partner_id", String(120), primary_key=True),
    Column("receipt_id", String(200), primary_key=True),
    Column(
        "disclosure_id",
        String(64),
        _disclosure_fk(),
        nullable=False,
        index=True,
    ),
    Column("status", String(20), nullable=False),
    Column("reason", String(200)),
    Column("token", Text, nullable=False),  # the compact JWS exactly as received
    _at("received_at"),
    Column("verified_kid", String(200), nullable=False),
    # Received after the envelope's `exp`: accepted, and marked.
    Column("late", Boolean, nullable=False, server_default=false()),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "disclosure_id",
        String(64),
        _disclosure_fk(),
        nullable=False,
        index=True,
    ),
    Column("facts", Json, nullable=False),  # the ICO Annex B facts
    Column("decision", String(20), nullable=False),  # approved | rejected | denied (by policy)
    Column("actor", String(200), nullable=False),  # the registered approver's staff identifier
    Column("reason", Text, nullable=False),
    _at("decided_at"),
    Column("login", String(200)),  # the operating-system login that ran the decision
    Column("role", String(40)),  # the approver's registered role, if any
    Column("fields_granted", Json),  # the approver's narrowing of the allowlist, if any
)

approvers = Table(
    "approvers",
    metadata,
    Column("name_key", String(200), primary_key=True),  # trimmed and case-folded
    Column("name", String(200), nullable=False),  # the staff identifier as registered
    Column("role", String(40)),  # caldicott_guardian | dpo | ig_manager
    Column("agreements", Json, nullable=False),
    Column("added_by", String(200), nullable=False),
    _at("added_at"),
)

subject_notices = Table(
    "subject_notices",
    metadata,
    # The notice's message id: its row in `disclosures` (delivery, receipt) has the same id.
    Column("id", String(64), primary_key=True),
    Column("request_id", String(64), nullable=False, index=True),  # one `subject notify` run
    Column("subject_nhs_index", String(64), nullable=False, index=True),  # blind index
    Column("kind", String(20), nullable=False),  # rectification | erasure | restriction
    Column("partner_id", String(120), nullable=False),
    Column("disclosure_ids", Json, nullable=False),  # the original disclosures it concerns
    Column("paths", Json, nullable=False),
    Column("corrected_paths", Json, nullable=False),  # paths only: values are only sealed
    Column("reason", Text, nullable=False),  # sealed under the data key, like a request's
    Column("not_sent", String(60)),  # reason code when no envelope could be sealed
    Column("requested_by", String(200), nullable=False),
    _at("created_at"),
    # The later of the records schedule and the longest-kept disclosure it concerns.
    _at("retain_until", nullable=True),
)

held_records = Table(
    "held_records",
    metadata,
    Column(
        "disclosure_id",
        String(64),
        _disclosure_fk(),
        primary_key=True,
    ),
    Column("ciphertext", LargeBinary, nullable=False),  # AES-256-GCM under the data key
    _at("created_at"),
)

optouts = Table(
    "optouts",
    metadata,
    Column("nhs_index", String(64), primary_key=True),  # blind index of the NHS number
    Column("list_version", String(60), nullable=False),
    _at("loaded_at"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("client", String(120), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("response", Json, nullable=False),
    _at("created_at"),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

audit_pending = Table(
    "audit_pending",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _at("at"),
    Column("actor_kind", String(20), nullable=False),
    Column("actor_name", String(200), nullable=False),
    Column("action", String(80), nullable=False),
    Column("targets", Text, nullable=False),  # canonical JSON text, hashed exactly as stored
    Column("details", Text, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    _at("at"),
    Column("actor_kind", String(20), nullable=False),
    Column("actor_name", String(200), nullable=False),
    Column("action", String(80), nullable=False),
    Column("targets", Text, nullable=False),
    Column("details", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    _at("at"),
    Column("kid", String(200), nullable=False),
    Column("token", Text, nullable=False),  # compact JWS over {seq, hash, at}
)
