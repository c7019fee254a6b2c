"""What partners implement: the disclosure envelope's claims and the receipt's claims.

Documented in the OpenAPI document's `webhooks` section (the council calls the partner). Both
allow claims they do not list: a reader ignores claims it does not know, so either side can add
claims without breaking the other (docs/keys-and-envelopes.md).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class EnvelopeAgreementClaim(_Open):
    """The agreement and its exact version."""

    id: str
    version: int | str


class DisclosureEnvelopeClaims(_Open):
    """The claims of the JWS inside the JWE a partner receives (a nested JWT, RFC 7519 s5.2)."""

    iss: str = Field(description="The council's id")
    aud: str = Field(description="The partner's id")
    jti: str = Field(description="The message id (disclosure id); quote it in the receipt")
    iat: int = Field(description="When it was sealed (NumericDate)")
    nbf: int | None = Field(None, description="Not valid before (NumericDate; equal to iat)")
    exp: int | None = Field(
        None, description="Expiry (NumericDate); a receipt after it is still accepted, as late"
    )
    agreement: EnvelopeAgreementClaim
    purpose: str = Field(description="The purpose code the data may be used for")
    subject: dict[str, Any] = Field(description="Only the identifiers the agreement allows")
    data: dict[str, Any] = Field(description="The record, minimised to the permitted fields")
    retain_until: str = Field(description="ISO date: delete the data by then")
    onward_sharing: Literal["prohibited", "listed", "with_consent"]
    onward_recipients: list[str] | None = Field(
        None, description="When the agreement lists them: the only permitted onward recipients"
    )
    contract_version: int = Field(1, ge=1, description="The envelope contract's version")


class ReceiptClaims(_Open):
    """The claims of the compact JWS a partner returns, signed with its registered key."""

    iss: str = Field(description="The partner's id")
    aud: str | list[str] = Field(description="The council's id (or a list containing it)")
    jti: str = Field(description="The receipt id, unique per partner")
    iat: int = Field(description="When the receipt was made (NumericDate)")
    message_id: str = Field(description="The envelope's jti")
    digest: str = Field(description="base64url SHA-256 of the exact JWE bytes received")
    status: Literal["received", "rejected"]
    reason: str | None = Field(None, description="Why, when rejected")


class NoticeClaim(_Open):
    """What an Article 19 notice says (docs/keys-and-envelopes.md)."""

    kind: Literal["rectification", "erasure", "restriction"]
    article: str = Field(description="UK GDPR Art 19")
    reason: str = Field(description="Why, in the council's words")
    disclosures: list[str] = Field(description="The jti of every disclosure it concerns")
    fields: list[str] = Field(description="The field paths concerned, only ones you received")
    corrections: dict[str, Any] | None = Field(
        None,
        description="Rectification only: path to corrected value, for paths in `fields`, in "
        "the form you received them",
    )


class NoticeEnvelopeClaims(_Open):
    """The claims of an Article 19 notice: JWS header typ `gatehouse-notice+jwt`, not `JWT`."""

    iss: str = Field(description="The council's id")
    aud: str = Field(description="The partner's id")
    jti: str = Field(description="The notice id; quote it in the receipt")
    iat: int = Field(description="When it was sealed (NumericDate)")
    nbf: int | None = Field(None, description="Not valid before (NumericDate; equal to iat)")
    exp: int | None = Field(None, description="Expiry (NumericDate)")
    notice: NoticeClaim
    contract_version: int = Field(1, ge=1, description="The envelope contract's version")


PARTNER_MODELS: tuple[type[BaseModel], ...] = (
    DisclosureEnvelopeClaims,
    ReceiptClaims,
    NoticeEnvelopeClaims,
)


def webhooks() -> dict[str, Any]:
    """The OpenAPI `webhooks` entry: the council POSTs an envelope; the partner's receipt."""
    envelope = "#/components/schemas/DisclosureEnvelopeClaims"
    receipt = "#/components/schemas/ReceiptClaims"
    notice = "#/components/schemas/NoticeEnvelopeClaims"
    disclosure = _delivery(
        "partner_receives_disclosure",
        "The council delivers a disclosure envelope to the partner's endpoint",
        "cty JWT) encrypted to the partner's key; decrypted, a compact JWS signed "
        f"by a key in the council's JWKS, whose claims are {envelope}. Ignore "
        "claims you do not know.",
        receipt,
    )
    article_19 = _delivery(
        "partner_receives_notice",
        "The council delivers an Article 19 notice (rectification, erasure, restriction)",
        "cty JWT) encrypted to the partner's key, to the same endpoint; decrypted, a compact "
        "JWS with typ gatehouse-notice+jwt (never JWT: not a disclosure) signed by a key in "
        f"the council's JWKS, whose claims are {notice}. Receipted like a disclosure.",
        receipt,
    )
    return {"disclosure": disclosure, "notice": article_19}


def _delivery(operation: str, summary: str, body: str, receipt: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation,
            "summary": summary,
            "description": (
                "The body is a compact JWE (ECDH-ES+A256KW or RSA-OAEP-256, A256GCM, " + body
            ),
            "requestBody": {
                "required": True,
                "content": {"application/jose": {"schema": {"type": "string"}}},
            },
            "responses": {
                "200": {
                    "description": (
                        f"A signed receipt now: a compact JWS whose claims are {receipt}"
                    ),
                    "content": {"application/jose": {"schema": {"type": "string"}}},
                },
                "202": {
                    "description": (
                        "Any other 2xx without a receipt: taken, the receipt follows to "
                        "POST /v1/receipts before the agreement's receipt deadline"
                    )
                },
                "429": {"description": "Busy: the council retries later (Retry-After)"},
                "503": {"description": "Unavailable: retried later (Retry-After honoured)"},
                "400": {
                    "description": (
                        "Any other 4xx: refused for good; the disclosure fails and is "
                        "dead-lettered for an administrator"
                    )
                },
            },
        }
    }
