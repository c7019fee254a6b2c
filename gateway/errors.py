"""One base error for the service; every refusal carries a stable reason code."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error Gatehouse raises on purpose; `code` is a stable snake_case reason."""

    code: str = "gateway_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The human-readable text (never carries a personal value)."""
        return str(self.args[0]) if self.args else self.code


class ConfigurationError(GatewayError):
    """A setting or file the service needs is missing or invalid."""

    code = "configuration_invalid"


class NotFoundError(GatewayError):
    """The thing asked for does not exist (or the caller may not see it)."""

    code = "not_found"


class ConflictError(GatewayError):
    """The request conflicts with what is already stored."""

    code = "conflict"


class DatabaseUnavailableError(GatewayError):
    """The database cannot be reached, or did not answer in time: try again shortly."""

    code = "database_unavailable"
