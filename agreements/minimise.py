"""Minimisation by default deny: only the fields an agreement permits for a purpose leave.

Paths are reported in the dictionary's form (`household[*].name`), names only, never values.
A record key that is not a plain identifier is reported as `<key>` so that a value smuggled in
as a key never reaches a log or the audit trail.

A permitted field's value must have the dictionary's type (and a string its maximum length):
text typed into a yes/no, date or number field never leaves. Such a value is removed, and its
path is reported twice: in `removed` like any other, and in `refused` with the code saying why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from agreements.catalog_errors import MinimisationError
from agreements.dictionary import DICTIONARY, FieldDefinition
from agreements.model import Agreement, Transform
from agreements.transforms import REMOVE, FieldRefusal, apply, refusal

MIN_KEY_BYTES = 16
_SAFE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
UNSAFE_KEY = "<key>"
_KNOWN_SEGMENTS = frozenset(
    part for path in DICTIONARY for part in path.replace("[*]", "").split(".")
)
# Most of a record is leaves of these exact types: recognised without the Mapping ABC's check.
_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})


@dataclass(frozen=True, slots=True)
class RefusedField:
    """A permitted field whose value was refused: its path and why (never the value)."""

    path: str
    code: FieldRefusal

    def to_dict(self) -> dict[str, str]:
        """The JSON form the disclosure record, the audit entry and the API carry."""
        return {"path": self.path, "code": str(self.code)}


@dataclass(frozen=True, slots=True)
class Minimised:
    """The data that may be sent, and which paths were sent, removed and refused (names only)."""

    data: dict[str, Any]
    sent: tuple[str, ...]
    removed: tuple[str, ...]
    subject: dict[str, str]
    refused: tuple[RefusedField, ...] = ()


def _segment(key: Any) -> str:
    if key in _KNOWN_SEGMENTS:
        return str(key)
    return key if isinstance(key, str) and _SAFE_KEY.fullmatch(key) else UNSAFE_KEY


class _Walk:
    """One pass over a record; collects paths in first-seen order without duplicates."""

    __slots__ = (
        "definitions",
        "key",
        "prefixes",
        "refused",
        "removed",
        "rules",
        "scope",
        "sent",
        "today",
    )

    def __init__(
        self,
        rules: Mapping[str, Transform],
        prefixes: frozenset[str],
        key: bytes,
        scope: str,
        today: date,
    ) -> None:
        self.rules, self.prefixes = rules, prefixes
        self.key, self.scope, self.today = key, scope, today
        self.definitions: Mapping[str, FieldDefinition] = {p: DICTIONARY[p] for p in rules}
        self.sent: dict[str, None] = {}
        self.removed: dict[str, None] = {}
        self.refused: dict[RefusedField, None] = {}

    def node(self, value: Any, path: str) -> Any:
        # A permitted leaf is judged as a leaf whatever it holds: an object or a list where a
        # value belongs is refused by its type, not walked into.
        if type(value) in _LEAF_TYPES or path in self.rules:
            return self.leaf(value, path)
        if isinstance(value, dict | Mapping):
            return self.mapping(value, path)
        if isinstance(value, list | tuple):
            return self.sequence(value, path)
        return self.leaf(value, path)

    def mapping(self, value: Mapping[Any, Any], path: str) -> Any:
        out: dict[str, Any] = {}
        for key, child in value.items():
            segment = _segment(key)
            child_path = f"{path}.{segment}" if path else segment
            if segment is UNSAFE_KEY or child_path not in self.prefixes:
                self.drop(child, child_path)
                continue
            result = self.node(child, child_path)
            if result is not REMOVE:
                out[key] = result
        return out or REMOVE

    def sequence(self, value: list[Any] | tuple[Any, ...], path: str) -> Any:
        child_path = f"{path}[*]"
        if child_path not in self.prefixes:
            for child in value:
                self.drop(child, child_path)
            return REMOVE
        out = [result for child in value if (result := self.node(child, child_path)) is not REMOVE]
        return out or REMOVE

    def leaf(self, value: Any, path: str) -> Any:
        transform = self.rules.get(path)
        if transform is None:
            self.removed[path] = None
            return REMOVE
        if transform != Transform.DROP:
            refused = refusal(value, self.definitions[path])
            if refused is not None:
                self.refused[RefusedField(path, refused)] = None
                self.removed[path] = None
                return REMOVE
        result = apply(transform, value, key=self.key, scope=self.scope, today=self.today)
        if result is REMOVE:
            self.removed[path] = None
        else:
            self.sent[path] = None
        return result

    def drop(self, value: Any, path: str) -> None:
        """Record every leaf path under a subtree that nothing permits."""
        if type(value) in _LEAF_TYPES:
            self.removed[path] = None
        elif isinstance(value, dict | Mapping):
            for key, child in value.items():
                self.drop(child, f"{path}.{_segment(key)}")
        elif isinstance(value, list | tuple):
            for child in value:
                self.drop(child, f"{path}[*]")
        else:
            self.removed[path] = None


def minimise(
    record: Mapping[str, Any],
    agreement: Agreement,
    purpose: str,
    *,
    pseudonym_key: bytes,
    today: date,
    subject: Mapping[str, Any] | None = None,
) -> Minimised:
    """Strip a record and the subject's identifiers to what the agreement permits for a purpose."""
    if len(pseudonym_key) < MIN_KEY_BYTES:
        raise MinimisationError(f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes")
    walk = _Walk(
        agreement.rules_for(purpose),
        agreement.rule_prefixes(purpose),
        pseudonym_key,
        agreement.id,
        today,
    )
    data = walk.mapping(record, "")
    kept_subject = _minimise_subject(subject or {}, agreement, walk, purpose in agreement.purposes)
    return Minimised(
        data={} if data is REMOVE else data,
        sent=tuple(walk.sent),
        removed=tuple(walk.removed),
        subject=kept_subject,
        refused=tuple(walk.refused),
    )


def _minimise_subject(
    subject: Mapping[str, Any], agreement: Agreement, walk: _Walk, permitted: bool
) -> dict[str, str]:
    allowed = {str(name) for name in agreement.subject_identifiers}
    kept: dict[str, str] = {}
    for key, value in subject.items():
        path = f"subject.{_segment(key)}"
        if not permitted or key not in allowed or value is None or isinstance(value, dict | list):
            walk.removed[path] = None
            continue
        if agreement.subject_transform == Transform.PSEUDONYMISE:
            kept[key] = str(
                apply(
                    Transform.PSEUDONYMISE, value, key=walk.key, scope=walk.scope, today=walk.today
                )
            )
        else:
            kept[key] = str(value)
        walk.sent[path] = None
    return kept
