"""Every reason code the code can emit is documented in docs/reason-codes.md.

Codes are collected from the source: literals given to `problem`, `unavailable`, `BodyRefused`,
audit verify's `Break` and pydantic's `PydanticCustomError`, `code=` keywords, `code = "..."`
class attributes, catalog rules and the policy core's enums.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from agreements.reasons import Reason
from agreements.transforms import FieldRefusal

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "agreements", "adapters")
CODE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$")


def _literal(node: ast.expr | None) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.match(node.value):
        return node.value
    return None


def _call_codes(node: ast.Call) -> list[str | None]:
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    args = node.args
    found: list[str | None] = [_literal(k.value) for k in node.keywords if k.arg == "code"]
    if name in ("problem", "BodyRefused") and len(args) > 1:
        found.append(_literal(args[1]))
    if name in ("unavailable", "PydanticCustomError", "Break") and args:
        found.append(_literal(args[0]))
    if name == "add" and len(args) == 3:  # a catalog check's (field, rule, message)
        found.append(_literal(args[1]))
    if name == "CatalogProblem" and len(args) == 4:
        found.append(_literal(args[2]))
    return found


def _class_codes(node: ast.ClassDef) -> list[str | None]:
    found: list[str | None] = []
    for stmt in node.body:
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign):
            targets, value = [stmt.target], stmt.value
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == "code" for t in targets):
            found.append(_literal(value))
    return found


def emitted_codes() -> dict[str, str]:
    """Each code the source can emit, with one place that emits it."""
    codes: dict[str, str] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    found = _call_codes(node)
                elif isinstance(node, ast.ClassDef):
                    found = _class_codes(node)
                else:
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                for code in found:
                    if code is not None:
                        codes.setdefault(code, where)
    for member in (*Reason, *FieldRefusal):
        codes.setdefault(member.value, type(member).__name__)
    return codes


def test_the_collector_finds_the_codes_of_each_kind() -> None:
    codes = emitted_codes()
    # One of each way a code is written: so an empty or broken collector fails here.
    for known in (
        "rate_limited",  # problem(429, "rate_limited", ...)
        "gateway_busy",  # unavailable(...)
        "anchor_timestamp_missing",  # an audit verify Break(...)
        "string_contains_nul",  # PydanticCustomError(...)
        "configuration_invalid",  # class attribute
        "unknown_partner",  # a catalog rule
        "national_data_opt_out",  # Reason
        "type_mismatch",  # FieldRefusal
    ):
        assert known in codes, known
    assert len(codes) > 100


def test_every_emitted_code_is_in_the_reason_codes_doc() -> None:
    doc = (ROOT / "docs" / "reason-codes.md").read_text()
    missing = {code: where for code, where in emitted_codes().items() if f"`{code}`" not in doc}
    assert not missing, f"add these to docs/reason-codes.md: {missing}"
