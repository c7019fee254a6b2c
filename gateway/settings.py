"""Typed settings, read once at start-up from GATEWAY_* environment variables."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.errors import ConfigurationError
from gateway.name_servers import NameServers, parse_name_servers
from gateway.queue.retry import RetryPolicy
from gateway.store.dialects import DatabaseOptions
from gateway.trusted_proxies import Network, parse_networks

DEFAULT_VAR = Path("var")


class Settings(BaseSettings):
    """Everything the gateway needs from its environment; frozen once built."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", frozen=True, extra="ignore", populate_by_name=True
    )

    org_id: str = Field("medway-council", min_length=1, description="The council's id (iss)")
    database_url: str = Field("", description="SQLAlchemy async URL; empty = SQLite under ./var/")
    broker_url: str = Field("", description="amqp://...; empty = embedded queue on the database")
    # Per process: every process holds up to pool + overflow connections (docs/operations.md).
    db_pool_size: int = Field(5, ge=1, le=200, description="Connections each process keeps open")
    db_max_overflow: int = Field(
        5, ge=0, le=200, description="Extra connections a process may open under load"
    )
    db_timeout: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="Seconds to connect, wait for a pooled connection, or run a statement",
    )
    keys_dir: Path = Field(DEFAULT_VAR / "keys", description="Private keys, mode 0600")
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    tls_cert: Path | None = Field(None, description="PEM certificate chain: serve HTTPS")
    tls_key: Path | None = Field(None, description="PEM private key (default: in tls_cert)")
    tls_client_ca: Path | None = Field(None, description="CA of client certificates (mTLS)")
    ops_host: str = Field("127.0.0.1", description="Operations listener: health, metrics")
    ops_port: int = Field(8081, ge=0, le=65535)
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)
    max_inflight_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="Request bodies one API process handles at once"
    )
    max_body_values: int = Field(
        20_000, ge=100, description="JSON values (members and elements) in one submission body"
    )
    body_timeout: float = Field(30.0, gt=0, description="Seconds to receive a request's body")
    client_concurrency: int = Field(
        32, ge=1, description="Requests in flight per client (or per address, unauthenticated)"
    )
    receipt_rate: float = Field(20.0, gt=0, description="POST /v1/receipts per second per address")
    receipt_burst: int = Field(200, ge=1, description="Burst of POST /v1/receipts per address")
    rate_limit_storage: str = Field(
        "async+memory://",
        description="Where receipt rate limits are counted (a `limits` async storage URI): "
        "memory is per process; async+valkey://host:6379 shares them across processes",
    )
    trusted_proxies: str = Field(
        "", description="Comma-separated proxy addresses/networks whose X-Forwarded-For counts"
    )
    allow_insecure_loopback: bool = False
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    records_retention: timedelta = Field(
        timedelta(days=6 * 365),
        # GATEWAY_METADATA_RETENTION is the setting's earlier name, still read.
        validation_alias=AliasChoices("GATEWAY_RECORDS_RETENTION", "GATEWAY_METADATA_RETENTION"),
        description="Records schedule: the least time a disclosure record is kept",
    )
    broker_prefix: str = Field("gatehouse", description="Prefix of every exchange and queue")
    partner_concurrency: int = Field(
        16, ge=1, le=1000, description="Deliveries to one partner in flight, across all workers"
    )
    retry_delays: str = Field("5s,30s,2m,10m,1h", description="Waits between delivery attempts")
    retry_max_attempts: int = Field(6, ge=1, description="Attempts before a dead letter")
    delivery_limit: int = Field(20, ge=1, description="Broker redeliveries before dead letter")
    webhook_connect_timeout: float = Field(5.0, gt=0, description="Seconds to connect")
    webhook_total_timeout: float = Field(30.0, gt=0, description="Seconds for a whole POST")
    envelope_lifetime: timedelta = Field(
        timedelta(days=30), gt=timedelta(0), description="Envelope exp after sealing (ISO 8601)"
    )
    audit_anchor: Path | None = Field(
        None, description="File each signed audit checkpoint is appended to (append-only)"
    )
    audit_tsa_url: str = Field(
        "", description="RFC 3161 time-stamp authority for anchored checkpoints; empty = none"
    )
    audit_tsa_ca: Path | None = Field(
        None, description="PEM bundle of the time-stamp authority's CA (needed with a TSA URL)"
    )
    sftp_key_file: Path | None = Field(
        None, description="The council's SSH key for SFTP; empty = sftp-client.ed25519 in keys_dir"
    )
    sftp_username: str = Field("", description="SFTP login if a partner names none; empty = org_id")
    sftp_connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect and log in")
    sftp_transfer_timeout: float = Field(60.0, gt=0, description="Seconds for one whole upload")
    sftp_uploads_per_partner: int = Field(
        4, ge=1, le=64, description="Uploads in flight at once over one partner's SSH connection"
    )
    sftp_fsync: bool = Field(
        True, description="Flush each uploaded file on the partner's disk before renaming it"
    )
    sftp_poll_seconds: float = Field(
        60.0, gt=0, description="Seconds between looks for receipts in partners' outbound dirs"
    )
    smtp_host: str = Field("", description="Mail submission server; empty = no email channel")
    smtp_port: int = Field(587, gt=0, lt=65536, description="Submission port (STARTTLS)")
    smtp_username: str = Field("", description="SMTP AUTH login; empty = none")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP AUTH password")
    smtp_from: str = Field("", description="From address; empty = disclosures@<org_id>.invalid")
    smtp_notify_address: str = Field("", description="Disposition-Notification-To; empty = from")
    smtp_ca_bundle: str = Field("", description="CA bundle for the server; empty = system CAs")
    smtp_timeout: float = Field(30.0, gt=0, description="Seconds for one SMTP step")
    smtp_sends_at_once: int = Field(4, ge=1, le=64, description="SMTP sessions open at once")
    smtp_delivery: Literal["submission", "direct"] = Field(
        "submission",
        description="submission: through GATEWAY_SMTP_HOST; direct: to the partner's MX, "
        "MTA-STS respected",
    )
    smtp_direct_port: int = Field(25, gt=0, lt=65536, description="Partners' MX port (direct)")
    smtp_dns_servers: str = Field(
        "",
        description="Name servers for direct delivery: IP address[:port],... (one port for "
        "all; [v6]:port); empty = system",
    )
    smtp_mta_sts_port: int = Field(
        443, gt=0, lt=65536, description="HTTPS port of partners' MTA-STS policy hosts"
    )
    imap_host: str = Field("", description="Receipts mailbox (IMAP, implicit TLS); empty = none")
    imap_port: int = Field(993, gt=0, lt=65536, description="IMAP port (imaps: TLS from the start)")
    imap_username: str = Field("", description="Receipts mailbox login")
    imap_password: SecretStr = Field(SecretStr(""), description="Receipts mailbox password")
    imap_ca_bundle: str = Field("", description="CA bundle for the IMAP server; empty = system CAs")
    imap_inbox: str = Field("INBOX", description="Folder partners' replies arrive in")
    imap_archive: str = Field("Archive", description="Folder taken replies are moved to")
    imap_quarantine: str = Field("Quarantine", description="Folder refused mail is moved to")
    imap_timeout: float = Field(30.0, gt=0, description="Seconds for one IMAP step")
    imap_poll_seconds: float = Field(
        60.0, gt=0, description="Seconds between looks in the receipts mailbox"
    )
    smtp_max_message_bytes: int = Field(
        10 * 1024 * 1024, gt=0, description="Largest message sent; a larger one fails at once"
    )
    smime_ca_bundle: str = Field(
        "", description="CA bundle partner S/MIME certificates must chain to; empty = no check"
    )
    smime_cert_file: Path | None = Field(
        None, description="Council S/MIME certificate (PEM); empty = smime-cert.pem in keys_dir"
    )
    smime_key_file: Path | None = Field(
        None, description="Its private key (PEM, 0600); empty = smime-key.pem in keys_dir"
    )
    receipt_scan_seconds: float = Field(
        15.0, gt=0, le=3600, description="Seconds between scans for overdue receipts"
    )
    policy_refresh_seconds: float = Field(
        2.0, gt=0, le=3600, description="Seconds between re-reads of agreements, keys, clients"
    )

    @field_validator("database_url")
    @classmethod
    def _database_url_is_async(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _rate_storage_is_async(cls, value: str) -> str:
        if not value.startswith("async+"):
            raise ValueError("must be an async storage URI: async+memory:// or async+valkey://")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies_parse(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("smtp_dns_servers")
    @classmethod
    def _dns_servers_parse(cls, value: str) -> str:
        parse_name_servers(value)
        return value

    @model_validator(mode="after")
    def _inflight_fits_a_body(self) -> Settings:
        if self.max_inflight_bytes < self.max_body_bytes:
            raise ValueError("max_inflight_bytes must be at least max_body_bytes")
        return self

    @model_validator(mode="after")
    def _tsa_needs_its_ca(self) -> Settings:
        if self.audit_tsa_url and self.audit_tsa_ca is None:
            raise ValueError("GATEWAY_AUDIT_TSA_URL needs GATEWAY_AUDIT_TSA_CA")
        return self

    @model_validator(mode="after")
    def _tls_needs_a_certificate(self) -> Settings:
        if self.tls_cert is None and (self.tls_key is not None or self.tls_client_ca is not None):
            raise ValueError("GATEWAY_TLS_KEY and GATEWAY_TLS_CLIENT_CA need GATEWAY_TLS_CERT")
        return self

    @field_validator("retry_delays")
    @classmethod
    def _retry_delays_parse(cls, value: str) -> str:
        try:
            RetryPolicy.parse(value)
        except ConfigurationError as exc:
            raise ValueError(exc.message) from None
        return value

    @property
    def retry_policy(self) -> RetryPolicy:
        """The default delivery retry policy (partners may have their own)."""
        return RetryPolicy.parse(self.retry_delays, self.retry_max_attempts)

    @property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        """The proxies whose X-Forwarded-For is believed; none by default."""
        return parse_networks(self.trusted_proxies)

    @property
    def smtp_name_servers(self) -> NameServers:
        """The DNS servers direct email delivery asks; none: the system's resolver."""
        return parse_name_servers(self.smtp_dns_servers)

    @property
    def database_options(self) -> DatabaseOptions:
        """Pool and time limits for this process's database engine."""
        return DatabaseOptions(
            pool_size=self.db_pool_size, max_overflow=self.db_max_overflow, timeout=self.db_timeout
        )

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file under ./var/."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(DEFAULT_VAR / 'gatehouse.db').resolve()}"


def load_settings(**overrides: object) -> Settings:
    """Build settings once; a bad value becomes one clear line naming the setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "*"
        name = name if name.startswith("GATEWAY_") else "GATEWAY_" + name
        raise ConfigurationError(f"{name}: {first['msg']}") from None
