"""Read the catalog: `partners.yaml` and one YAML file per agreement, in any subfolder.

The only module of the policy core that touches files. Every problem in every file is
collected, so one run of `gateway-admin agreements validate` reports them all.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agreements.catalog_errors import CatalogError, CatalogProblem
from agreements.checks import agreement_problems
from agreements.model import Agreement, Catalog, Partner

PARTNERS_FILE = "partners.yaml"
_SUFFIXES = frozenset({".yaml", ".yml"})
_RULES = {
    "extra_forbidden": "unknown_key",
    "missing": "required",
    "enum": "unknown_value",
    "literal_error": "unknown_value",
}


def default_catalog_dir() -> Path:
    """The example council's catalog shipped inside the package."""
    return Path(__file__).resolve().parent / "catalog"


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice (PyYAML would silently keep the last)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Hashable, Any]:
    loader.flatten_mapping(node)
    result: dict[Hashable, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _read(path: Path) -> tuple[Any, list[CatalogProblem]]:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_StrictLoader), []  # noqa: S506 (a safe loader)
    except OSError as exc:
        return None, [
            CatalogProblem(str(path), "", "file_unreadable", exc.strerror or "cannot read")
        ]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        reason = getattr(exc, "problem", None) or "not valid YAML"
        return None, [CatalogProblem(str(path), "", "yaml_invalid", f"{reason}{where}")]


def _location(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _validation_problems(
    exc: ValidationError, source: str, prefix: str = ""
) -> list[CatalogProblem]:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field = _location(error["loc"])
        if prefix:
            field = f"{prefix}{field}" if field.startswith("[") else f"{prefix}.{field}"
        rule = _RULES.get(error["type"], "invalid_value")
        message = error["msg"].removeprefix("Value error, ")
        problems.append(CatalogProblem(source, field.rstrip("."), rule, message))
    return problems


def parse_partners(document: Any, *, source: str) -> dict[str, Partner]:
    """Partners from a parsed `partners.yaml` ({partners: [...]}); raises CatalogError."""
    if not isinstance(document, Mapping) or not isinstance(document.get("partners"), list):
        raise CatalogError(
            [CatalogProblem(source, "partners", "required", "expected a partners list")]
        )
    partners: dict[str, Partner] = {}
    problems: list[CatalogProblem] = []
    extra = sorted(str(key) for key in document if key != "partners")
    problems += [CatalogProblem(source, key, "unknown_key", "unknown key") for key in extra]
    for index, item in enumerate(document["partners"]):
        try:
            partner = Partner.model_validate(item)
        except ValidationError as exc:
            problems += _validation_problems(exc, source, f"partners[{index}]")
            continue
        if partner.id in partners:
            problems.append(
                CatalogProblem(
                    source, f"partners[{index}].id", "duplicate_partner_id", "id used twice"
                )
            )
        partners[partner.id] = partner
    if problems:
        raise CatalogError(problems)
    return partners


def parse_agreement(
    document: Mapping[str, Any], *, source: str, partners: Mapping[str, Partner]
) -> Agreement:
    """One agreement from a parsed document, checked against the law and the catalog."""
    if not isinstance(document, Mapping):
        raise CatalogError([CatalogProblem(source, "", "invalid_value", "expected a mapping")])
    try:
        agreement = Agreement.model_validate(document)
    except ValidationError as exc:
        raise CatalogError(_validation_problems(exc, source)) from None
    problems = agreement_problems(agreement, source, partners)
    if problems:
        raise CatalogError(problems)
    return agreement


def _agreement_files(directory: Path) -> list[Path]:
    return sorted(
        path
        for path in directory.rglob("*")
        if path.suffix in _SUFFIXES and path.is_file() and path != directory / PARTNERS_FILE
    )


def _load_partners(path: Path) -> tuple[dict[str, Partner], list[CatalogProblem]]:
    document, problems = _read(path)
    if problems:
        return {}, problems
    try:
        return parse_partners(document, source=str(path)), []
    except CatalogError as exc:
        return {}, list(exc.problems)


def _load_agreement(
    path: Path, partners: Mapping[str, Partner]
) -> tuple[Agreement | None, list[CatalogProblem]]:
    document, problems = _read(path)
    if problems:
        return None, problems
    try:
        return parse_agreement(document, source=str(path), partners=partners), []
    except CatalogError as exc:
        return None, list(exc.problems)


def _load(directory: Path) -> tuple[Catalog, list[CatalogProblem]]:
    partners_path = directory / PARTNERS_FILE
    if not partners_path.is_file():
        missing = CatalogProblem(
            str(partners_path), "", "file_not_found", "a catalog needs partners.yaml"
        )
        partners: dict[str, Partner] = {}
        problems = [missing]
    else:
        partners, problems = _load_partners(partners_path)
    agreements: dict[str, Agreement] = {}
    sources: dict[str, str] = {}
    for path in _agreement_files(directory):
        agreement, found = _load_agreement(path, partners)
        problems += found
        if agreement is None:
            continue
        if agreement.id in agreements:
            message = f"id {agreement.id!r} is also used by {sources[agreement.id]}"
            problems.append(CatalogProblem(str(path), "id", "duplicate_agreement_id", message))
            continue
        agreements[agreement.id], sources[agreement.id] = agreement, str(path)
    for agreement_id, agreement in agreements.items():
        if agreement.parent is not None and agreement.parent not in agreements:
            message = f"parent {agreement.parent!r} is not in the catalog"
            problems.append(
                CatalogProblem(sources[agreement_id], "parent", "unknown_parent", message)
            )
    return Catalog(partners=partners, agreements=agreements), problems


def load_catalog(directory: Path) -> Catalog:
    """The whole catalog, or CatalogError listing every problem in every file."""
    catalog, problems = _load(directory)
    if problems:
        raise CatalogError(problems)
    return catalog


def _partners_near(path: Path) -> dict[str, Partner]:
    """partners.yaml from the file's folder or the nearest parent; else the packaged one."""
    for folder in path.resolve().parents:
        candidate = folder / PARTNERS_FILE
        if candidate.is_file():
            return _load_partners(candidate)[0]
    return _load_partners(default_catalog_dir() / PARTNERS_FILE)[0]


def validate_paths(paths: Sequence[Path]) -> list[CatalogProblem]:
    """Every problem in every catalog directory or file named; empty when all are valid."""
    problems: list[CatalogProblem] = []
    for path in paths:
        if path.is_dir():
            problems += _load(path)[1]
        elif not path.is_file():
            problems.append(
                CatalogProblem(str(path), "", "file_not_found", "no such file or directory")
            )
        elif path.name == PARTNERS_FILE:
            problems += _load_partners(path)[1]
        else:
            problems += _load_agreement(path, _partners_near(path))[1]
    return problems
