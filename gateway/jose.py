"""The one place that configures the JOSE library: allow-lists, size limits, key import.

Why joserfc (and jwcrypto only as the independent implementation in the interop tests):
`benchmarks/bench_sealing.py` runs both libraries bare on the same work, a 2 KB record signed
ES256 inside an ECDH-ES+A256KW / A256GCM JWE, on one core of the shared 2-core machine
(best of 5 x 0.5 s): joserfc 1.8 sealed 4,550/s and opened 3,920/s; jwcrypto 1.6 sealed
2,100/s and opened 2,410/s (a first single run, 2,000 iterations each: 4,390 and 3,360 against 1,540
and 2,280). joserfc also ships type hints (mypy --strict) and takes explicit registries for
allow-lists and size limits.

Two joserfc traps handled here: its default registries refuse JWE ciphertext over 64 KB
(about 48 KB of plaintext), and passing `algorithms=` to `jwe` functions silently builds a
fresh default registry, dropping any raised limits. So every call below passes `registry=`
and never `algorithms=`.

Sealing writes its compact JWS and JWE here rather than through joserfc's serialisers, which
hold several whole copies of a large payload (base64, joins, str and bytes) at once. The
compact forms are plain joins of base64url parts (RFC 7515 s7.1, RFC 7516 s7.1); the signing,
key agreement and key wrapping are joserfc's own algorithm models, the content encryption is
`cryptography`'s AES-GCM fed piece by piece. Tests hold the output to joserfc's byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Final, cast

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from joserfc import jwe, jws
from joserfc.errors import DecodeError, JoseError, UnsupportedAlgorithmError
from joserfc.jwa import JWEEncModel, JWEKeyAgreement, JWEKeyEncryption
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key
from joserfc.util import json_b64decode, json_b64encode

from gateway.errors import GatewayError

# What we sign with and publish: Ed25519 keys as RFC 8037's "EdDSA", the name every JOSE
# library accepts (Authlib and others refuse RFC 9864's newer "Ed25519").
SIGNING_ALGS: Final = ("ES256", "EdDSA")
# What we accept when verifying (council tokens, audit checkpoints, partner receipts): both
# names for Ed25519, so tokens signed before or by libraries using RFC 9864 still verify.
COUNCIL_SIGNING_ALGS: Final = ("ES256", "EdDSA", "Ed25519")
RECEIPT_SIGNING_ALGS: Final = COUNCIL_SIGNING_ALGS
_ALG_ALIASES: Final = {"Ed25519": "EdDSA"}
KEY_WRAP_ALGS: Final = ("ECDH-ES+A256KW", "RSA-OAEP-256")
CONTENT_ENCRYPTION: Final = "A256GCM"
MIN_RSA_BITS: Final = 3072
MAX_RSA_BITS: Final = 8192

# Claims JSON up to 16 MiB: a 10 MB record plus JSON escaping and the other claims.
MAX_CLAIMS_BYTES: Final = 16 * 1024 * 1024
# Large claims are serialised, encoded and encrypted in pieces of about this many bytes.
_PIECE: Final = 48 * 1024
_GCM_TAG_BYTES: Final = 16
_KEPT_SIGNING_INPUT: Final = 4 * _PIECE
_CANONICAL: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_HEADER_B64: Final = 2048
_SIGNATURE_B64: Final = 1024


def _b64_length(size: int) -> int:
    """Characters of unpadded base64url for `size` bytes."""
    return (size * 4 + 2) // 3


_JWS_PAYLOAD_B64: Final = _b64_length(MAX_CLAIMS_BYTES)
_JWS_COMPACT: Final = _HEADER_B64 + _JWS_PAYLOAD_B64 + _SIGNATURE_B64 + 2
_JWE_CIPHERTEXT_B64: Final = _b64_length(_JWS_COMPACT)
# The largest compact JWE we will even try to parse.
MAX_ENVELOPE_BYTES: Final = _JWE_CIPHERTEXT_B64 + 4 * _HEADER_B64


class JoseFailure(GatewayError):
    """A token or key failed a JOSE check; `reason` is prefixed into the caller's own code."""

    code = "jose_failure"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, code=f"jose_{reason}")
        self.reason = reason


class _SizedJWSRegistry(jws.JWSRegistry):
    """JWS registry with room for 10 MB records and a strict, explicit algorithm allow-list."""

    max_header_length = _HEADER_B64
    max_payload_length = _JWS_PAYLOAD_B64
    max_signature_length = _SIGNATURE_B64

    def get_alg(self, name: str) -> Any:
        """Only the names on our allow-list; no library 'recommended' fallback."""
        if not self.allowed or name not in self.allowed or name not in self.algorithms:
            raise UnsupportedAlgorithmError(f"Algorithm of '{name}' is not allowed")
        # Bypasses the base get_alg, which warns that "EdDSA" is deprecated (RFC 9864): it is
        # the name we publish, since most JOSE libraries know no other.
        return self.algorithms[name]


class _SizedJWERegistry(jwe.JWERegistry):
    """JWE registry with room for 10 MB records (joserfc's default stops near 48 KB)."""

    max_protected_header_length = _HEADER_B64
    max_encrypted_key_length = 2048  # RSA-8192 wrapped key is 1,366 base64url characters
    max_ciphertext_length = _JWE_CIPHERTEXT_B64


def jws_registry(algorithms: Collection[str]) -> jws.JWSRegistry:
    """A JWS registry limited to these algorithms, with our size limits."""
    return _jws_registry(tuple(sorted(algorithms)))


@lru_cache(maxsize=32)
def _jws_registry(algorithms: tuple[str, ...]) -> jws.JWSRegistry:
    # strict_check_header=False: RFC 7515 says unknown non-critical headers are ignored;
    # `crit` is refused separately by read_header.
    return _SizedJWSRegistry(algorithms=list(algorithms), strict_check_header=False)


JWE_REGISTRY: Final = _SizedJWERegistry(algorithms=[*KEY_WRAP_ALGS, CONTENT_ENCRYPTION])

JoseKey = ECKey | OKPKey | RSAKey
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def b64url_digest(data: bytes) -> str:
    """Base64url SHA-256 without padding: how envelopes and receipts name the exact bytes."""
    raw = hashlib.sha256(data).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def read_header(token: bytes | str, parts: int) -> dict[str, Any]:
    """The protected header of a compact JWS (3 parts) or JWE (5 parts), not yet trusted."""
    raw = token.encode("ascii", "replace") if isinstance(token, str) else token
    if len(raw) > MAX_ENVELOPE_BYTES:
        raise JoseFailure("token is larger than the size limit", "too_large")
    segments = raw.split(b".")
    if len(segments) != parts:
        raise JoseFailure(f"not a compact serialization with {parts} parts", "malformed")
    if len(segments[0]) > _HEADER_B64:
        raise JoseFailure("protected header is too large", "malformed")
    try:
        header = json_b64decode(segments[0])
    except (ValueError, TypeError, UnicodeDecodeError):
        raise JoseFailure("protected header is not base64url JSON", "malformed") from None
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise JoseFailure("protected header has no alg", "malformed")
    if "crit" in header:
        raise JoseFailure("critical header extensions are not supported", "malformed")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 200):
        raise JoseFailure("kid must be a short non-empty string", "malformed")
    return header


def import_public_jwk(jwk: Mapping[str, Any]) -> JoseKey:
    """A public key from a JWK dict; private members are refused."""
    if jwk.get("kty") not in {"EC", "OKP", "RSA"}:
        raise JoseFailure("key type must be EC, OKP or RSA", "key_type")
    if _PRIVATE_MEMBERS & set(jwk):
        raise JoseFailure("a private key was given where a public key is expected", "private")
    return _import(jwk)


def import_private_jwk(jwk: Mapping[str, Any]) -> JoseKey:
    """A private key from a JWK dict (partner side and the council's key files)."""
    key = _import(jwk)
    if not key.is_private:
        raise JoseFailure("a private key is needed", "not_private")
    return key


def _import(jwk: Mapping[str, Any]) -> JoseKey:
    kty = jwk.get("kty")
    if kty not in {"EC", "OKP", "RSA"}:
        raise JoseFailure("key type must be EC, OKP or RSA", "key_type")
    members = dict(jwk)
    if members.get("alg") in ("EdDSA", "Ed25519"):
        # joserfc holds a key to its JWK's alg; either name of Ed25519 must verify with it
        # (`_alg_matches_key` checks the curve).
        del members["alg"]
    try:
        key = import_key(members, key_type=kty)
    except (JoseError, ValueError, TypeError, KeyError):
        raise JoseFailure("not a valid JWK", "key_invalid") from None
    if not isinstance(key, ECKey | OKPKey | RSAKey):  # pragma: no cover - kty checked above
        raise JoseFailure("key type must be EC, OKP or RSA", "key_type")
    return key


def canonical_alg(name: str) -> str:
    """The name we sign and publish under: "Ed25519" is spelled "EdDSA"; others unchanged."""
    return _ALG_ALIASES.get(name, name)


def signing_alg_for(key: JoseKey) -> str:
    """The JWS alg we use with a signing key: ES256 for P-256, EdDSA for Ed25519."""
    if isinstance(key, ECKey) and key.curve_name == "P-256":
        return "ES256"
    if isinstance(key, OKPKey) and key.curve_name == "Ed25519":
        return "EdDSA"
    raise JoseFailure("signing keys must be EC P-256 or Ed25519", "key_type")


def key_wrap_alg_for(key: JoseKey) -> str:
    """The JWE alg for an encryption key: ECDH-ES+A256KW (P-256, X25519) or RSA-OAEP-256."""
    if isinstance(key, ECKey) and key.curve_name == "P-256":
        return "ECDH-ES+A256KW"
    if isinstance(key, OKPKey) and key.curve_name == "X25519":
        return "ECDH-ES+A256KW"
    if isinstance(key, RSAKey):
        bits = rsa_bits(key)
        if bits < MIN_RSA_BITS or bits > MAX_RSA_BITS:
            raise JoseFailure(
                f"RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits", "key_size"
            )
        return "RSA-OAEP-256"
    raise JoseFailure("encryption keys must be EC P-256, X25519 or RSA", "key_type")


def rsa_bits(key: RSAKey) -> int:
    """The modulus size of an RSA key in bits."""
    n = key.as_dict(private=False)["n"]
    assert isinstance(n, str)
    padded = n + "=" * (-len(n) % 4)
    return int.from_bytes(base64.urlsafe_b64decode(padded), "big").bit_length()


def _alg_matches_key(alg: str, key: JoseKey) -> bool:
    try:
        return signing_alg_for(key) == canonical_alg(alg)
    except JoseFailure:
        return False


def sign_jws(payload: bytes, key: JoseKey, header: Mapping[str, Any]) -> str:
    """A compact JWS over payload; header must name an allowed alg matching the key."""
    alg = str(header.get("alg"))
    if not _alg_matches_key(alg, key):
        raise JoseFailure("alg does not match the signing key", "algorithm_not_allowed")
    registry = jws_registry([alg])
    return jws.serialize_compact(dict(header), payload, key, registry=registry)


@dataclass(frozen=True, slots=True)
class DetachedSignature:
    """A compact JWS with its payload part left out (RFC 7515 appendix F): the base64url
    protected header and the signature, with the length and SHA-256 of the signing input.

    The whole JWS is `pieces(payload)` joined: a large one is written out or encrypted piece by
    piece and never held whole. A small one keeps its signing input, so its payload is not
    read again; a large payload must come again exactly as it was signed.
    """

    header: bytes
    signature: bytes
    signed_length: int
    signed_digest: bytes = field(repr=False)
    signing_input: bytes | None = field(default=None, repr=False)

    @property
    def length(self) -> int:
        """The length of the compact JWS."""
        return self.signed_length + 1 + len(self.signature)

    def pieces(self, payload: Iterable[bytes]) -> Iterator[bytes]:
        """The compact JWS over `payload` (given again, in pieces), in order."""
        if self.signing_input is not None:
            yield self.signing_input
        else:
            signed = hashlib.sha256()
            size = 0
            for piece in itertools.chain([self.header + b"."], _b64url_pieces(payload)):
                signed.update(piece)
                size += len(piece)
                yield piece
            if (size, signed.digest()) != (self.signed_length, self.signed_digest):
                raise JoseFailure("the payload is not the one signed", "payload_changed")
        yield b"." + self.signature

    def compact(self, payload: Iterable[bytes]) -> bytes:
        """The compact JWS over `payload` (given again, in pieces), written into its bytes."""
        out = _Output(self.length)
        for piece in self.pieces(payload):
            out.write(piece)
        return out.value()


def sign_detached(
    payload: Iterable[bytes], key: JoseKey, header: Mapping[str, Any]
) -> DetachedSignature:
    """What `sign_jws` signs, for a payload given in pieces: the signing input is the one copy
    made here (the algorithms sign one buffer); a large one is let go before this returns."""
    alg = str(header.get("alg"))
    if not _alg_matches_key(alg, key):
        raise JoseFailure("alg does not match the signing key", "algorithm_not_allowed")
    registry = jws_registry([alg])
    protected = dict(header)
    registry.check_header(protected)
    model = registry.get_alg(alg)
    model.check_key(key)
    encoded = json_b64encode(protected)
    signing_input = bytearray(encoded + b".")
    for piece in _b64url_pieces(payload):
        signing_input += piece
    # The algorithm hands the message to `cryptography`, which reads any buffer.
    signature = _b64url(model.sign(cast(bytes, signing_input), key))
    if len(signing_input) <= _KEPT_SIGNING_INPUT:
        kept = bytes(signing_input)
        return DetachedSignature(encoded, signature, len(kept), b"", signing_input=kept)
    digest = hashlib.sha256(signing_input).digest()
    return DetachedSignature(encoded, signature, len(signing_input), digest)


def _b64url(data: bytes | memoryview) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _b64url_pieces(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """Base64url (unpadded) of the pieces joined, piece by piece: up to 2 bytes of each piece
    wait for the next, so every piece but the last is encoded without padding."""
    held = b""
    for piece in pieces:
        data = held + piece if held else piece
        whole = len(data) - len(data) % 3
        if whole:
            yield base64.urlsafe_b64encode(memoryview(data)[:whole])
        held = data[whole:]
    yield _b64url(held)


class _Output:
    """A bytes object of known final size written in pieces: `io.BytesIO` hands over its own
    buffer from `getvalue()`, so the result is not copied again."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._buffer = io.BytesIO()
        if size:  # one allocation of the final size, instead of growing as pieces come
            self._buffer.seek(size - 1)
            self._buffer.write(b"\0")
            self._buffer.seek(0)

    def write(self, piece: bytes) -> None:
        self._buffer.write(piece)

    def value(self) -> bytes:
        if self._buffer.tell() != self._size:  # pragma: no cover - a length miscounted
            raise AssertionError("the output is not the size worked out for it")
        return self._buffer.getvalue()


def verify_jws(token: bytes | str, key: JoseKey, algorithms: Collection[str]) -> bytes:
    """The payload of a compact JWS whose signature verifies with key under an allowed alg."""
    header = read_header(token, 3)
    alg = header["alg"]
    if alg not in algorithms:
        raise JoseFailure(f"alg {alg!r} is not allowed", "algorithm_not_allowed")
    if not _alg_matches_key(alg, key):
        raise JoseFailure("alg does not match the key", "algorithm_not_allowed")
    try:
        obj = jws.deserialize_compact(token, key, registry=jws_registry([alg]))
    except DecodeError:
        raise JoseFailure("not a compact JWS", "malformed") from None
    except JoseError:
        raise JoseFailure("signature does not verify", "bad_signature") from None
    except Exception:  # hostile input may trip anything inside the library
        raise JoseFailure("not a compact JWS", "malformed") from None
    return obj.payload


def find_jwk(jwks: Mapping[str, Any], kid: str) -> Mapping[str, Any] | None:
    """The key with this kid in a JWKS document, or None."""
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        return None
    for candidate in keys:
        if isinstance(candidate, Mapping) and candidate.get("kid") == kid:
            return candidate
    return None


def verify_compact(
    token: bytes | str,
    jwks: Mapping[str, Any],
    *,
    algorithms: Collection[str] = COUNCIL_SIGNING_ALGS,
) -> bytes:
    """Verify a compact JWS against the JWKS key named by its `kid`; returns the payload."""
    header = read_header(token, 3)
    if header["alg"] not in algorithms:
        raise JoseFailure(f"alg {header['alg']!r} is not allowed", "algorithm_not_allowed")
    kid = header.get("kid")
    if kid is None:
        raise JoseFailure("the signature names no kid", "unknown_key")
    jwk = find_jwk(jwks, kid)
    if jwk is None:
        raise JoseFailure("the signing key is not in the key set", "unknown_key")
    declared = canonical_alg(str(jwk.get("alg", header["alg"])))
    if jwk.get("use", "sig") != "sig" or declared != canonical_alg(header["alg"]):
        raise JoseFailure("the key is not for this algorithm", "algorithm_not_allowed")
    return verify_jws(token, import_public_jwk(jwk), algorithms)


def encrypt_jwe(plaintext: bytes, key: JoseKey, header: Mapping[str, Any]) -> str:
    """A compact JWE of plaintext for key, through the sized registry."""
    return encrypt_pieces([plaintext], len(plaintext), key, header).decode("ascii")


def encrypt_pieces(
    plaintext: Iterable[bytes], length: int, key: JoseKey, header: Mapping[str, Any]
) -> bytes:
    """A compact JWE for key of the plaintext given in pieces, `length` bytes in all.

    The key management is joserfc's (its algorithm models, as `jwe.encrypt_compact` uses them);
    the content is encrypted (A256GCM) and base64url-encoded piece by piece straight into the
    token's final bytes, so a large plaintext is never held whole on the way.
    """
    protected, cek, encrypted_key = _content_key(key, header)
    iv = _content_encryption().generate_iv()
    encoded = json_b64encode(protected)
    encryptor = Cipher(algorithms.AES(cek), modes.GCM(iv)).encryptor()
    encryptor.authenticate_additional_data(encoded)
    front = b".".join([encoded, _b64url(encrypted_key), _b64url(iv), b""])
    out = _Output(len(front) + _b64_length(length) + 1 + _b64_length(_GCM_TAG_BYTES))
    out.write(front)
    for piece in _b64url_pieces(encryptor.update(piece) for piece in plaintext):
        out.write(piece)
    encryptor.finalize()
    out.write(b"." + _b64url(encryptor.tag))
    return out.value()


def _content_encryption() -> JWEEncModel:
    return JWE_REGISTRY.get_enc(CONTENT_ENCRYPTION)


def _content_key(key: JoseKey, header: Mapping[str, Any]) -> tuple[dict[str, Any], bytes, bytes]:
    """The protected header (with its `epk` under ECDH-ES), a fresh content key and that key
    encrypted for `key`: RFC 7516 s5.1 steps 1-8, by joserfc's algorithm models."""
    if header.get("enc") != CONTENT_ENCRYPTION or "zip" in header:
        raise JoseFailure("JWE enc is not allowed", "algorithm_not_allowed")
    message = jwe.CompactEncryption(dict(header))
    recipient: jwe.Recipient[Any] = jwe.Recipient(message, None, key)
    message.recipient = recipient
    key.check_use("enc")
    JWE_REGISTRY.check_header(recipient.headers())
    alg = JWE_REGISTRY.get_alg(str(header.get("alg")))
    enc = _content_encryption()
    cek: bytes = enc.generate_cek()
    if isinstance(alg, JWEKeyAgreement) and alg.key_wrapping is not None:
        alg.prepare_ephemeral_key(recipient)
        try:
            agreed = alg.encrypt_agreed_upon_key(enc, recipient)
        finally:
            recipient.ephemeral_key = None
        encrypted_key = alg.wrap_cek_with_auk(cek, agreed)
    elif isinstance(alg, JWEKeyEncryption):
        encrypted_key = alg.encrypt_cek(cek, recipient)
    else:
        raise JoseFailure(f"JWE alg {alg.name!r} is not allowed", "algorithm_not_allowed")
    return message.protected, cek, encrypted_key


def decrypt_jwe(token: bytes | str, key: JoseKey) -> bytes:
    """The plaintext of a compact JWE; any failure is one opaque `decrypt_failed`."""
    header = read_header(token, 5)
    if header["alg"] not in KEY_WRAP_ALGS or header.get("enc") != CONTENT_ENCRYPTION:
        raise JoseFailure("JWE alg or enc is not allowed", "algorithm_not_allowed")
    if "zip" in header:
        raise JoseFailure("compressed JWE is not allowed", "algorithm_not_allowed")
    try:
        wrap = key_wrap_alg_for(key)
    except JoseFailure:
        raise JoseFailure("the key cannot decrypt this", "decrypt_failed") from None
    if wrap != header["alg"]:
        raise JoseFailure("the JWE alg does not fit the key", "decrypt_failed")
    try:
        obj = jwe.decrypt_compact(token, key, registry=JWE_REGISTRY)
    except Exception:  # hostile input: joserfc raises KeyError, ValueError... as well as JoseError
        raise JoseFailure("the envelope cannot be decrypted", "decrypt_failed") from None
    if obj.plaintext is None:  # pragma: no cover - joserfc always sets it on success
        raise JoseFailure("the envelope cannot be decrypted", "decrypt_failed")
    return obj.plaintext


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON for claims; refuses NaN and non-JSON types."""
    return canonical_json_text(value).encode()


def canonical_json_text(value: Mapping[str, Any]) -> str:
    """`canonical_json` before its UTF-8 encoding."""
    return _CANONICAL.encode(value)


def canonical_json_pieces(value: Mapping[str, Any]) -> Iterator[bytes]:
    """`canonical_json(value)` in UTF-8 pieces of about 48 KB, never built whole (json's pure
    Python encoder: the same bytes, slower than its C one-shot)."""
    held: list[str] = []
    size = 0
    for text in _CANONICAL.iterencode(value):
        held.append(text)
        size += len(text)
        if size >= _PIECE:
            yield "".join(held).encode()
            held.clear()
            size = 0
    if held:
        yield "".join(held).encode()


def parse_json_object(payload: bytes) -> dict[str, Any]:
    """A JSON object from a payload, or a `malformed` failure."""
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise JoseFailure("payload is not JSON", "malformed") from None
    if not isinstance(value, dict):
        raise JoseFailure("payload is not a JSON object", "malformed")
    return value
