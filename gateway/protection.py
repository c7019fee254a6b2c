"""The gateway's own secrets at rest: a blind-index key for identifiers, a data key for holds.

Subject identifiers are stored only as HMAC-SHA256 blind indexes, so the subject-access report
can find a person's disclosures without the identifier being readable in the database. Records
held for approval are sealed with AES-256-GCM under the data key, bound to their disclosure id.
Both keys are 32 random bytes in files under GATEWAY_KEYS_DIR, created 0600 on first use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.errors import ConfigurationError, GatewayError

IdentifierKind = Literal["nhs_number", "local_id"]
INDEX_KEY_FILE = "blind-index.key"
DATA_KEY_FILE = "data-at-rest.key"
KEY_BYTES = 32
NONCE_BYTES = 12
FORMAT = b"\x01"  # sealed blob layout: version | key id (4) | nonce (12) | ciphertext+tag


class AtRestDecryptError(GatewayError):
    """A sealed record could not be opened: wrong key, wrong disclosure, or altered bytes."""

    code = "at_rest_decrypt_failed"


def normalise(kind: IdentifierKind, value: str) -> str:
    """One spelling per identifier, so '943 476 5919' and '9434765919' index the same."""
    if kind == "nhs_number":
        return "".join(ch for ch in value if ch.isdigit())
    return value.strip()


class Protection:
    """Blind indexes and at-rest sealing with the gateway's own keys."""

    def __init__(self, index_key: bytes, data_key: bytes) -> None:
        if len(index_key) != KEY_BYTES or len(data_key) != KEY_BYTES:
            raise ConfigurationError("at-rest keys must be 32 bytes")
        # Keyed once: each index copies it, which also keeps the GIL (the one-shot
        # hmac.digest lets it go around OpenSSL, a thread switch on a busy event loop).
        self._index_mac = hmac.new(index_key, digestmod="sha256")
        self._pseudonym_key = hmac.digest(index_key, b"gatehouse-pseudonym-v1", "sha256")
        self._aead = AESGCM(data_key)
        self._key_id = hashlib.sha256(data_key).digest()[:4]

    @classmethod
    def from_dir(cls, keys_dir: Path) -> Protection:
        """Load both keys from `keys_dir`, creating them (mode 0600) the first time."""
        keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(
            _load_or_create(keys_dir / INDEX_KEY_FILE), _load_or_create(keys_dir / DATA_KEY_FILE)
        )

    def blind_index(self, kind: IdentifierKind, value: str) -> str:
        """The keyed hash stored in place of an identifier (hex HMAC-SHA256, kind-separated)."""
        mac = self._index_mac.copy()
        mac.update(f"{kind}\x00{normalise(kind, value)}".encode())
        return mac.hexdigest()

    @property
    def pseudonym_key(self) -> bytes:
        """The key for `pseudonymise` transforms, derived so it never equals the index key."""
        return self._pseudonym_key

    def seal_text(self, text: str, aad: str) -> str:
        """Seal free text for a text column (base64 of `seal_at_rest`)."""
        return base64.b64encode(self.seal_at_rest(text.encode(), aad.encode())).decode("ascii")

    def open_text(self, sealed: str, aad: str) -> str:
        """Open free text sealed by `seal_text` with the same `aad`."""
        return self.open_at_rest(base64.b64decode(sealed), aad.encode()).decode()

    def seal_at_rest(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt for storage; `aad` (e.g. the disclosure id) must match when opening."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return FORMAT + self._key_id + nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open_at_rest(self, sealed: bytes, aad: bytes) -> bytes:
        """Decrypt a value sealed by `seal_at_rest`; refuses anything altered or misplaced."""
        header = len(FORMAT) + len(self._key_id)
        if sealed[:1] != FORMAT or sealed[1:header] != self._key_id:
            raise AtRestDecryptError("sealed record is not for this data key")
        nonce = sealed[header : header + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[header + NONCE_BYTES :], aad)
        except InvalidTag:
            raise AtRestDecryptError("sealed record failed authentication") from None


def _load_or_create(path: Path) -> bytes:
    """Read a key file, or create it atomically (two processes starting together agree)."""
    if not path.exists():
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temp, path)  # fails if another process won the race: use theirs
        except FileExistsError:
            pass
        finally:
            temp.unlink()
    if path.stat().st_mode & 0o077:
        raise ConfigurationError(f"{path.name}: key file must not be readable by group or others")
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ConfigurationError(f"{path.name}: expected {KEY_BYTES} bytes")
    return key
