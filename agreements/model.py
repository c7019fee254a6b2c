"""The agreement model: partners, channels, field rules and information sharing agreements.

Frozen pydantic models that refuse unknown keys; cross-checks against the data dictionary and
the catalog live in `agreements.checks`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from ipaddress import ip_address
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agreements.law import (
    Article6,
    Article9,
    Article10Route,
    Exemption,
    Schedule1Condition,
    StatutoryGateway,
)
from agreements.period import Period
from agreements.vocabulary import (
    AgreementStatus,
    ApprovalPolicy,
    ChannelType,
    OnwardSharing,
    OptOutBasis,
    PartnerKind,
    PartyRole,
    Purpose,
    SubjectIdentifier,
    Tier,
    Transform,
)

__all__ = [
    "Agreement",
    "AgreementStatus",
    "ApprovalPolicy",
    "ApprovalRecord",
    "Article6",
    "Article9",
    "Article10Route",
    "Catalog",
    "ChannelSpec",
    "ChannelType",
    "Exemption",
    "FieldRule",
    "LawfulBasis",
    "OnwardSharing",
    "OptOutBasis",
    "Partner",
    "PartnerKind",
    "PartyRole",
    "Period",
    "Purpose",
    "References",
    "RetryOverride",
    "Schedule1Condition",
    "StatutoryGateway",
    "SubjectIdentifier",
    "Tier",
    "Transform",
    "channel_settings",
    "channel_target",
]


_MODEL = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)
_ID = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
_LOOPBACK_NAMES = {"localhost"}
ChannelSetting = str | int | float | bool
# One or more OpenSSH public key lines ("ssh-ed25519 AAAA..."): an SFTP partner's pinned host keys.
_HOST_KEY = (
    r"^((ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|rsa-sha2-(256|512)|ssh-rsa)"
    r" [A-Za-z0-9+/]+={0,2}( [^\n]*)?(\n|$))+$"
)
DEFAULT_RECEIPT_DEADLINES: Mapping[ChannelType, timedelta] = {
    ChannelType.WEBHOOK: timedelta(hours=1),
    ChannelType.MESH: timedelta(hours=24),
    ChannelType.EMAIL: timedelta(hours=24),
    ChannelType.SFTP: timedelta(days=3),
}


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class ChannelSpec(BaseModel):
    """A partner's channel and its typed settings; `settings` holds any adapter extras."""

    model_config = _MODEL

    type: ChannelType
    endpoint: str | None = None  # webhook URL (https; http only to loopback)
    # The endpoint may resolve to private, link-local or loopback addresses (a partner on the
    # council's own network); without it such an https endpoint is refused.
    allow_private_address: bool = False
    receipt_deadline: timedelta | None = None  # None: the channel type's default
    mailbox: str | None = Field(None, pattern=r"^[A-Z0-9]{6,12}$")  # MESH recipient mailbox
    workflow_id: str | None = Field(None, pattern=r"^[A-Z0-9_]{3,64}$")  # MESH workflow id
    environment_url: str | None = None  # MESH environment base URL
    address: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$")  # secure email recipient
    host: str | None = None  # sftp host
    path: str | None = Field(None, pattern=r"^/")  # sftp inbound directory
    port: int | None = Field(None, gt=0, lt=65536)  # sftp port (default 22)
    username: str | None = Field(None, min_length=1)  # sftp login (default: the council's)
    host_key: str | None = Field(None, pattern=_HOST_KEY)  # sftp: pinned OpenSSH public key(s)
    receipts_path: str | None = Field(None, pattern=r"^/")  # sftp: partner's outbound directory
    manifest: bool | None = None  # sftp: a JSON manifest beside each envelope
    # MESH: the workflow Article 19 notices travel on (DEFAULT_NOTICE_WORKFLOW_ID if unset), so
    # the partner's system routes them apart from disclosures.
    notice_workflow_id: str | None = Field(None, pattern=r"^[A-Z0-9_]{3,64}$")
    settings: dict[str, ChannelSetting] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _settings_for_type(self) -> ChannelSpec:
        required = {
            ChannelType.WEBHOOK: ("endpoint",),
            ChannelType.MESH: ("mailbox", "workflow_id"),
            ChannelType.EMAIL: ("address",),
            ChannelType.SFTP: ("host", "path", "host_key"),
        }[self.type]
        missing = [name for name in required if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a {self.type} channel needs {', '.join(missing)}")
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            if not parts.hostname or parts.scheme not in {"https", "http"}:
                raise ValueError("endpoint must be an absolute https:// URL")
            if parts.scheme == "http" and not _is_loopback(parts.hostname):
                raise ValueError("endpoint must use https (http only to a loopback address)")
        if self.notice_workflow_id is not None and self.type is not ChannelType.MESH:
            raise ValueError("notice_workflow_id applies to MESH channels only")
        if self.allow_private_address and self.type is not ChannelType.WEBHOOK:
            raise ValueError("allow_private_address applies to webhook channels only")
        if self.receipt_deadline is not None and self.receipt_deadline <= timedelta(0):
            raise ValueError("receipt_deadline must be positive")
        return self

    @property
    def is_loopback_http(self) -> bool:
        """True for a plain-http loopback endpoint (allowed only in tests and the demo)."""
        return self.endpoint is not None and self.endpoint.startswith("http://")

    @property
    def effective_receipt_deadline(self) -> timedelta:
        """The configured deadline, or the channel type's default."""
        return self.receipt_deadline or DEFAULT_RECEIPT_DEADLINES[self.type]


class Partner(BaseModel):
    """An organisation the council shares with, and how to reach it."""

    model_config = _MODEL

    id: _ID
    name: str = Field(min_length=1)
    kind: PartnerKind
    channel: ChannelSpec
    ods_code: str | None = None  # NHS organisation code
    ico_registration: str | None = None
    contact: str | None = None
    dpo_contact: str | None = None


class FieldRule(BaseModel):
    """A permitted field path, the purposes it may go for (all, if empty) and its transform."""

    model_config = _MODEL

    path: str = Field(min_length=1)
    purposes: tuple[Purpose, ...] = ()
    transform: Transform = Transform.KEEP


class LawfulBasis(BaseModel):
    """The legal basis for the sharing: Article 6, and where needed Article 9/10 and Schedule 1."""

    model_config = _MODEL

    article_6: Article6
    article_9: Article9 | None = None
    schedule_1: tuple[Schedule1Condition, ...] = ()
    article_10: tuple[Article10Route, ...] = ()
    exemption: Exemption | None = None  # Schedule 2: permits, never compels
    gateways: tuple[StatutoryGateway, ...] = ()
    appropriate_policy_document: str | None = None


class ApprovalRecord(BaseModel):
    """Who signed the agreement off (governance, not per-disclosure approval)."""

    model_config = _MODEL

    body: str
    approver: str
    post: str
    date: date


class References(BaseModel):
    """Documents an information governance officer expects to find."""

    model_config = _MODEL

    dpia: str | None = None
    privacy_notice: str | None = None
    policy: str | None = None


class RetryOverride(BaseModel):
    """Per-agreement override of delivery retries."""

    model_config = _MODEL

    max_attempts: int = Field(ge=1, le=50)
    first_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=6)


class Agreement(BaseModel):
    """An information sharing agreement between the council and one partner."""

    model_config = _MODEL

    id: _ID
    version: int = Field(ge=1)
    title: str = Field(min_length=1)
    tier: Tier
    parent: str | None = None
    status: AgreementStatus
    effective_from: date
    effective_to: date | None = None
    review_due: date
    partner: str
    partner_role: PartyRole = PartyRole.CONTROLLER
    purposes: tuple[Purpose, ...]  # at least one (checked in agreements.checks)
    lawful_basis: LawfulBasis
    national_data_opt_out: OptOutBasis
    approval: ApprovalPolicy = ApprovalPolicy.NONE
    retention: Period
    onward_sharing: OnwardSharing
    onward_recipients: tuple[str, ...] = ()
    subject_identifiers: tuple[SubjectIdentifier, ...]  # at least one (checked)
    subject_transform: Literal[Transform.KEEP, Transform.PSEUDONYMISE] = Transform.KEEP
    fields: tuple[FieldRule, ...] = ()
    approvals: tuple[ApprovalRecord, ...] = ()
    references: References = References()
    receipt_deadline: timedelta | None = None  # overrides the partner channel's
    retry: RetryOverride | None = None
    gzip: bool = False  # MESH: compress the envelope
    workflow_id: str | None = Field(None, pattern=r"^[A-Z0-9_]{3,64}$")  # MESH override
    notes: str | None = None

    @field_validator("purposes", "subject_identifiers")
    @classmethod
    def _no_duplicates(cls, value: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists an entry twice")
        return value

    @property
    def needs_approval(self) -> bool:
        """One-off, police, DWP and Schedule 2 requests need a named officer's approval each time.

        The loader refuses a police, DWP or Schedule 2 agreement without `approval: required`,
        so this holds for them whatever the tier (`agreements.basis_checks`).
        """
        return (
            self.approval == ApprovalPolicy.REQUIRED
            or self.tier == Tier.ONE_OFF
            or self.lawful_basis.exemption is not None
        )

    def rules_for(self, purpose: str) -> Mapping[str, Transform]:
        """Permitted leaf paths and their transforms for a purpose; empty if it is not permitted."""
        return self._rule_index()[0].get(purpose, {})

    def rule_prefixes(self, purpose: str) -> frozenset[str]:
        """Every path leading to a permitted leaf (leaves included), for pruning a record walk."""
        return self._rule_index()[1].get(purpose, frozenset())

    def _rule_index(
        self,
    ) -> tuple[dict[str, dict[str, Transform]], dict[str, frozenset[str]]]:
        cached = self.__dict__.get("_rule_cache")
        # Keyed by identity so that a model_copy(update=...) never reuses a stale index.
        if cached is None or cached[0] is not self.fields or cached[1] is not self.purposes:
            rules: dict[str, dict[str, Transform]] = {}
            prefixes: dict[str, frozenset[str]] = {}
            for purpose in self.purposes:
                permitted = {
                    rule.path: Transform(rule.transform)
                    for rule in self.fields
                    if (not rule.purposes or purpose in rule.purposes)
                }
                rules[purpose.value] = permitted
                prefixes[purpose.value] = _prefixes(permitted)
            cached = (self.fields, self.purposes, rules, prefixes)
            self.__dict__["_rule_cache"] = cached
        return cached[2], cached[3]

    def retain_until(self, sent_on: date) -> date:
        """The date the partner must delete the data by, counted from the day it is sent."""
        return self.retention.after(sent_on)

    def to_document(self) -> dict[str, Any]:
        """A plain JSON-able dict that `parse_agreement` accepts back (defaults left out)."""
        return self.model_dump(mode="json", exclude_defaults=True)

    def content_hash(self) -> str:
        """SHA-256 of the canonical content: a changed agreement must carry a new version."""
        canonical = json.dumps(
            self.to_document(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


def _prefixes(paths: Iterable[str]) -> frozenset[str]:
    found: set[str] = set()
    for path in paths:
        found.update(path[:index] for index, char in enumerate(path) if char in ".[")
        found.add(path)
    return frozenset(found)


class Catalog(BaseModel):
    """Every partner and agreement the gateway knows, by id."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    partners: Mapping[str, Partner]
    agreements: Mapping[str, Agreement]

    def agreement(self, agreement_id: str) -> Agreement | None:
        """The agreement with this id, or None (default deny)."""
        return self.agreements.get(agreement_id)

    def partner_of(self, agreement: Agreement) -> Partner:
        """The agreement's partner (the loader guarantees it exists)."""
        return self.partners[agreement.partner]


def channel_settings(partner: Partner) -> dict[str, Any]:
    """The partner's own channel settings, before any agreement's overrides."""
    channel = partner.channel
    target: dict[str, Any] = dict(channel.settings)
    target.update(
        {
            key: value
            for key, value in channel.model_dump(
                mode="json", exclude={"settings", "receipt_deadline"}
            ).items()
            if value is not None
        }
    )
    target["partner_id"] = partner.id
    return target


def channel_target(partner: Partner, agreement: Agreement) -> dict[str, Any]:
    """The settings a channel adapter needs for this partner, with the agreement's overrides."""
    channel = partner.channel
    target = channel_settings(partner)
    if agreement.workflow_id is not None:
        target["workflow_id"] = agreement.workflow_id
    deadline = agreement.receipt_deadline or channel.effective_receipt_deadline
    target["receipt_deadline_seconds"] = int(deadline.total_seconds())
    target["gzip"] = agreement.gzip
    target["partner_id"] = partner.id
    return target


DEFAULT_NOTICE_WORKFLOW_ID = "GATEHOUSE_ART19_NOTICE"


def notice_target(partner: Partner, agreement: Agreement | None) -> dict[str, Any]:
    """Where an Article 19 notice goes: the partner's usual channel (with the agreement's
    overrides while it is known), on MESH under the partner's notice workflow id."""
    if agreement is not None:
        target = channel_target(partner, agreement)
    else:
        target = channel_settings(partner)
        deadline = partner.channel.effective_receipt_deadline
        target.update(receipt_deadline_seconds=int(deadline.total_seconds()), gzip=False)
    target.pop("notice_workflow_id", None)
    if partner.channel.type is ChannelType.MESH:
        target["workflow_id"] = partner.channel.notice_workflow_id or DEFAULT_NOTICE_WORKFLOW_ID
    return target
