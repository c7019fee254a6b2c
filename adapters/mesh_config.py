"""The gateway's own MESH settings: mailbox, secrets, endpoint, TLS files, chunk size."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.mesh_chunking import DEFAULT_CHUNK_BYTES, validate_chunk_size
from gateway.errors import ConfigurationError


def is_loopback_url(url: str) -> bool:
    """True for http(s)://127.x / ::1 / localhost: the only places plain HTTP is allowed."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, allow_insecure_loopback: bool) -> str:
    """A MESH base URL must be https, except plain http on loopback when explicitly allowed."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url.rstrip("/")
    if parts.scheme == "http" and allow_insecure_loopback and is_loopback_url(url):
        return url.rstrip("/")
    raise ValueError("MESH URL must be https:// (plain http only on loopback when allowed)")


class MeshConfig(BaseSettings):
    """The gateway's own MESH mailbox and connection settings (env prefix GATEWAY_MESH_)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_MESH_", frozen=True, extra="ignore")

    mailbox: str = Field(min_length=1, description="Our own mailbox id, e.g. X26ABC1")
    password: SecretStr = Field(description="Our mailbox password")
    shared_key: SecretStr = Field(description="The MESH environment's shared HMAC key")
    base_url: str = Field(description="e.g. https://msg.intspineservices.nhs.uk")
    client_cert: Path | None = Field(None, description="PEM client certificate (mutual TLS)")
    client_key: Path | None = Field(None, description="PEM private key of the client cert")
    ca_bundle: Path | None = Field(None, description="CA bundle that signed the MESH server")
    check_hostname: bool = True
    allow_insecure_loopback: bool = False
    chunk_size: int = Field(
        DEFAULT_CHUNK_BYTES, description="Bytes per chunk (5 MiB < n <= 100 MB)"
    )
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(120.0, gt=0, description="Seconds without a byte before giving up")
    max_connections: int = Field(32, ge=1)
    receipt_workflow_id: str = Field("GATEHOUSE_RECEIPT", min_length=1)
    track_before_send: bool = Field(True, description="Check tracking by local id before a send")

    @field_validator("mailbox")
    @classmethod
    def _upper_mailbox(cls, value: str) -> str:
        return value.strip().upper()

    @field_validator("chunk_size")
    @classmethod
    def _chunk_size_in_mesh_bounds(cls, value: int) -> int:
        return validate_chunk_size(value)

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        check_base_url(self.base_url, allow_insecure_loopback=self.allow_insecure_loopback)
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("client_cert and client_key go together")
        return self


def load_mesh_config(**overrides: object) -> MeshConfig:
    """Read GATEWAY_MESH_* once; a bad value becomes one clear line naming the setting."""
    try:
        return MeshConfig(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "GATEWAY_MESH_" + str(first["loc"][0]).upper() if first["loc"] else "GATEWAY_MESH_*"
        raise ConfigurationError(f"{name}: {first['msg']}") from None


def build_ssl_context(config: MeshConfig) -> ssl.SSLContext:
    """TLS 1.2+, the configured CA bundle (else the system's), our client certificate if any."""
    cafile = str(config.ca_bundle) if config.ca_bundle else None
    try:
        context = ssl.create_default_context(cafile=cafile)
        if config.client_cert and config.client_key:
            context.load_cert_chain(str(config.client_cert), str(config.client_key))
    except OSError as exc:  # ssl.SSLError is an OSError too
        raise ConfigurationError(
            f"MESH TLS files unusable (GATEWAY_MESH_CA_BUNDLE/CLIENT_CERT/CLIENT_KEY): "
            f"{type(exc).__name__}"
        ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = config.check_hostname
    return context
