"""Errors of the policy core; pure, so they do not derive from the service's GatewayError."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class PolicyError(Exception):
    """Base of every error the policy core raises on purpose; `code` is a stable snake_case code."""

    code: str = "policy_error"

    @property
    def message(self) -> str:
        """The human-readable text (never carries a personal value)."""
        return str(self.args[0]) if self.args else self.code


@dataclass(frozen=True, slots=True)
class CatalogProblem:
    """One broken rule in one catalog file: which file, which field, which rule, and why."""

    file: str
    field: str
    rule: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message} [{self.rule}]"

    def to_dict(self) -> dict[str, str]:
        """A JSON-able form for `--json` output."""
        return {"file": self.file, "field": self.field, "rule": self.rule, "message": self.message}


class CatalogError(PolicyError):
    """A catalog (or one agreement) does not load; `problems` lists every rule broken."""

    code = "catalog_invalid"

    def __init__(self, problems: Sequence[CatalogProblem]) -> None:
        self.problems: tuple[CatalogProblem, ...] = tuple(problems)
        head = str(self.problems[0]) if self.problems else "no details"
        more = len(self.problems) - 1
        super().__init__(head + (f" (and {more} more problems)" if more > 0 else ""))


class MinimisationError(PolicyError):
    """Minimisation cannot run safely (for example, a pseudonym key that is too short)."""

    code = "minimisation_invalid"
