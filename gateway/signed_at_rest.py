"""The council-signed disclosure for an email partner, kept under the gateway's data key.

An email partner receives the signed JWT itself (readable, and as an attachment a system can
verify with the council's JWKS), or that inside S/MIME made at send time, so no envelope sealed
to the partner exists when the disclosure is queued. What is stored in its place is the signed
JWT sealed with AES-256-GCM under the gateway's at-rest data key, bound to the disclosure id,
and opened only by the delivery worker just before the send (docs/adr/0005-email-signed-at-rest.md).
"""

from __future__ import annotations

from dataclasses import replace

from gateway.application.channel import SIGNED_JWT, Envelope
from gateway.jose import b64url_digest
from gateway.protection import Protection
from gateway.sealing import SealedEnvelope, SignedDisclosure

AT_REST_KID = "council-at-rest"
"""Recorded in place of a partner key id: the envelope is sealed under the gateway's data key."""
_PURPOSE = b"email-signed-jwt\x00"


def _aad(disclosure_id: str) -> bytes:
    return _PURPOSE + disclosure_id.encode()


def seal_signed(
    signed: SignedDisclosure, protection: Protection, disclosure_id: str
) -> SealedEnvelope:
    """Store form: the JWS sealed at rest; its digest is the JWS's, the bytes a partner gets."""
    body = protection.seal_at_rest(signed.token, _aad(disclosure_id))
    return SealedEnvelope(body, b64url_digest(signed.token), signed.signing_kid, AT_REST_KID)


def held_at_rest(key_ids: tuple[str, ...] | list[str]) -> bool:
    """The disclosure's stored envelope is a signed JWT under the data key, not a JWE."""
    return AT_REST_KID in key_ids


def open_held(envelope: Envelope, protection: Protection) -> Envelope:
    """The envelope as the channel needs it: the signed JWT in memory (AtRestDecryptError if
    the stored bytes were altered or belong to another disclosure)."""
    token = protection.open_at_rest(envelope.body, _aad(envelope.message_id))
    return replace(envelope, body=token, digest=b64url_digest(token), content_type=SIGNED_JWT)
