"""The council's signing keys: a keyring over GATEWAY_KEYS_DIR with rotation and a JWKS.

Lifecycle of a key: `pending` (generated, published so partners can cache it, not signing)
-> `active` (the one key that signs) -> `superseded` (rotated out; still published until
`published_until`) -> `retired` (never published, private key file deleted). Only the
public halves of retired keys are kept, for verifying our own old audit checkpoints.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from joserfc.jwk import ECKey, OKPKey

from gateway import jose
from gateway.errors import GatewayError
from gateway.partner_keys import (
    PartnerKey,
    PartnerKeyError,
    encryption_key_for,
    generate_partner_keys,
    public_jwk,
    signing_keys_for,
)
from gateway.signer import FileSigner, Signer

__all__ = [
    "CouncilKey",
    "CouncilKeyring",
    "FileSigner",
    "KeyringError",
    "PartnerKey",
    "PartnerKeyError",
    "Signer",
    "encryption_key_for",
    "generate_partner_keys",
    "public_jwk",
    "signing_keys_for",
    "verify_compact",
]

CouncilKeyStatus = Literal["pending", "active", "superseded", "retired"]
METADATA_FILE = "keyring.json"
_LOCK_FILE = ".keyring.lock"


class KeyringError(GatewayError):
    """The keyring cannot do what was asked (no active key, unknown kid, bad file)."""

    code = "keyring_error"


@dataclass(frozen=True, slots=True)
class CouncilKey:
    """Public facts about one council signing key (what `keys list` shows)."""

    kid: str
    alg: str
    status: CouncilKeyStatus
    created_at: datetime
    public_jwk: Mapping[str, Any]
    activated_at: datetime | None = None
    published_until: datetime | None = None
    retired_at: datetime | None = None

    def published_at(self, now: datetime) -> bool:
        """In the public JWKS now: pending, active, or superseded and still in its overlap."""
        if self.status in ("pending", "active"):
            return True
        return self.status == "superseded" and (
            self.published_until is None or now < self.published_until
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        data = dataclasses.asdict(self)
        for name in ("created_at", "activated_at", "published_until", "retired_at"):
            data[name] = data[name].isoformat() if data[name] is not None else None
        data["public_jwk"] = dict(self.public_jwk)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CouncilKey:
        """Rebuild from the metadata file."""
        moments = {
            name: datetime.fromisoformat(data[name]) if data.get(name) else None
            for name in ("activated_at", "published_until", "retired_at")
        }
        # Keys made before Ed25519 was published as "EdDSA" say "Ed25519": read them as EdDSA.
        public = dict(data["public_jwk"])
        if "alg" in public:
            public["alg"] = jose.canonical_alg(public["alg"])
        return cls(
            kid=data["kid"],
            alg=jose.canonical_alg(data["alg"]),
            status=data["status"],
            created_at=datetime.fromisoformat(data["created_at"]),
            public_jwk=public,
            **moments,
        )


class CouncilKeyring:
    """The council's signing keys in one directory: private key files plus keyring.json."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._signers: dict[str, FileSigner] = {}
        self._cache: tuple[tuple[int, int], builtins.list[CouncilKey]] | None = None
        self._metadata_path = str(self.directory / METADATA_FILE)  # stat-ed on every use

    def __repr__(self) -> str:
        return f"CouncilKeyring({str(self.directory)!r})"

    def list(self) -> builtins.list[CouncilKey]:
        """Every key ever generated, oldest first."""
        return list(self._current())

    def _current(self) -> Sequence[CouncilKey]:
        """The keys as keyring.json holds them now (re-read when another process changed it)."""
        try:
            stat = os.stat(self._metadata_path)
        except FileNotFoundError:
            return ()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if self._cache is None or self._cache[0] != stamp:
            try:
                raw = json.loads(Path(self._metadata_path).read_text("utf-8"))
                keys = [CouncilKey.from_dict(item) for item in raw["keys"]]
            except (ValueError, KeyError, TypeError):
                raise KeyringError(f"{METADATA_FILE} is not a valid keyring file") from None
            self._cache = (stamp, keys)
        return self._cache[1]

    def generate(self, alg: str, now: datetime) -> CouncilKey:
        """A new key; it becomes active when there is none, otherwise pending (pre-published)."""
        _require_aware(now)
        with self._locked():
            return self._generate(_signing_alg(alg), now)

    def _generate(self, alg: str, now: datetime) -> CouncilKey:
        keys = self.list()
        private = _new_private_key(alg)
        kid = private.thumbprint()
        public = private.as_dict(private=False, kid=kid, use="sig", alg=alg)
        self._write_private(kid, json.dumps(private.as_dict(private=True, kid=kid)))
        first = not any(k.status == "active" for k in keys)
        key = CouncilKey(
            kid=kid,
            alg=alg,
            status="active" if first else "pending",
            created_at=now,
            public_jwk=public,
            activated_at=now if first else None,
        )
        self._save([*keys, key])
        return key

    def rotate(self, now: datetime, overlap: timedelta, alg: str | None = None) -> CouncilKey:
        """Make a new key active (the newest pending one, or a fresh one); the old is superseded.

        The old key stays in the JWKS until `now + overlap`, so partners can still verify
        what it signed; after that it simply drops out (retire it to delete the private key).
        """
        _require_aware(now)
        if overlap < timedelta(0):
            raise KeyringError("overlap must not be negative")
        alg = None if alg is None else _signing_alg(alg)
        with self._locked():
            current = self._active_or_none()
            pending = [k for k in self.list() if k.status == "pending" and alg in (None, k.alg)]
            new = pending[-1] if pending else self._generate(alg or _alg_of(current), now)
            self._save([_after_rotation(k, new.kid, now, overlap) for k in self.list()])
        return self.get(new.kid)

    def retire(self, kid: str, now: datetime) -> CouncilKey:
        """Withdraw a key for good: out of the JWKS and its private key file deleted."""
        _require_aware(now)
        with self._locked():
            keys = self.list()
            target = self.get(kid)
            if target.status == "active":
                raise KeyringError(
                    "the active key cannot be retired; rotate first", code="key_active"
                )
            retired = dataclasses.replace(target, status="retired", retired_at=now)
            self._save([retired if k.kid == kid else k for k in keys])
            with contextlib.suppress(FileNotFoundError):
                self._private_path(kid).unlink()
            self._signers.pop(kid, None)
            return retired

    def get(self, kid: str) -> CouncilKey:
        """One key by kid."""
        for key in self.list():
            if key.kid == kid:
                return key
        raise KeyringError("no council key with this kid", code="key_unknown")

    def active_signer(self, now: datetime) -> Signer:
        """The signer of the active key; `signing_key_missing` when no key is active."""
        _require_aware(now)
        key = self._active_or_none()
        if key is None:
            raise KeyringError("no active council signing key", code="signing_key_missing")
        signer = self._signers.get(key.kid)
        if signer is None:
            signer = FileSigner(key.kid, self._read_private(key.kid))
            self._signers[key.kid] = signer
        return signer

    def jwks(self, now: datetime) -> dict[str, Any]:
        """The public JWKS: pending, active and superseded-in-overlap keys; never retired ones."""
        _require_aware(now)
        return {"keys": [dict(k.public_jwk) for k in self.list() if k.published_at(now)]}

    def verification_keys(self, now: datetime) -> dict[str, Any]:
        """Every key created by `now`, retired ones included: for verifying our own old
        audit checkpoints. Never publish this set."""
        _require_aware(now)
        return {"keys": [dict(k.public_jwk) for k in self.list() if k.created_at <= now]}

    def _active_or_none(self) -> CouncilKey | None:
        return next((k for k in self._current() if k.status == "active"), None)

    def _private_path(self, kid: str) -> Path:
        return self.directory / f"{kid}.jwk.json"

    def _write_private(self, kid: str, text: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(self._private_path(kid), flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())

    def _read_private(self, kid: str) -> jose.JoseKey:
        path = self._private_path(kid)
        try:
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                raise KeyringError(f"private key file {path.name} must have mode 0600")
            return jose.import_private_jwk(json.loads(path.read_text("utf-8")))
        except FileNotFoundError:
            raise KeyringError(f"private key file {path.name} is missing") from None
        except (ValueError, jose.JoseFailure):
            raise KeyringError(f"private key file {path.name} is not a valid JWK") from None

    def _save(self, keys: builtins.list[CouncilKey]) -> None:
        """Write keyring.json atomically: a temporary file, fsync, rename, fsync the directory."""
        path = self.directory / METADATA_FILE
        tmp = path.with_suffix(".json.tmp")
        text = json.dumps({"keys": [k.to_dict() for k in keys]}, indent=2)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._cache = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time across processes (gateway-admin and a running service)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.directory / _LOCK_FILE, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def verify_compact(token: bytes | str, jwks: Mapping[str, Any]) -> bytes:
    """Verify a council-signed compact JWS (e.g. an audit checkpoint) against a JWKS."""
    return jose.verify_compact(token, jwks, algorithms=jose.COUNCIL_SIGNING_ALGS)


def _after_rotation(key: CouncilKey, new_kid: str, now: datetime, overlap: timedelta) -> CouncilKey:
    if key.kid == new_kid:
        return dataclasses.replace(key, status="active", activated_at=now)
    if key.status == "active":
        return dataclasses.replace(key, status="superseded", published_until=now + overlap)
    return key


def _alg_of(key: CouncilKey | None) -> str:
    return key.alg if key is not None else "ES256"


def _signing_alg(alg: str) -> str:
    """ES256, or EdDSA for an Ed25519 key (either name is accepted)."""
    canonical = jose.canonical_alg(alg)
    if canonical not in jose.SIGNING_ALGS:
        raise KeyringError("alg must be ES256 or EdDSA (Ed25519)")
    return canonical


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise KeyringError("times must carry a time zone")


class KeyringCheckpointSigner:
    """Audit checkpoints are signed by whichever council key is active at the time."""

    def __init__(self, keyring: CouncilKeyring, clock: Callable[[], datetime]) -> None:
        self._keyring, self._clock = keyring, clock

    @property
    def kid(self) -> str:
        """The active key's id."""
        return self._keyring.active_signer(self._clock()).kid

    def sign_compact(self, payload: bytes, *, typ: str | None = "JWT") -> str:
        """Sign with the active council key."""
        return self._keyring.active_signer(self._clock()).sign_compact(payload, typ=typ)


def _new_private_key(
    alg: str, generate: Callable[[str], ECKey | OKPKey] | None = None
) -> ECKey | OKPKey:
    """A fresh signing key whose kid (its RFC 7638 thumbprint) does not begin with "-".

    One base64url thumbprint in 64 does, and the command line then reads it as an option:
    `gateway-admin keys retire -Xy...` was a usage error. Such a key is simply made again.
    """
    make = generate or _generate_key
    while True:
        private = make(alg)
        if not private.thumbprint().startswith("-"):
            return private


def _generate_key(alg: str) -> ECKey | OKPKey:
    return ECKey.generate_key("P-256") if alg == "ES256" else OKPKey.generate_key("Ed25519")
