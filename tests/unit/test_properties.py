"""Properties that must hold for every record: default deny, accounting, no raw leaks, purity."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agreements.decision import DecisionContext, DisclosureRequest, decide
from agreements.dictionary import DICTIONARY, ValueType
from agreements.loader import default_catalog_dir, load_catalog
from agreements.minimise import UNSAFE_KEY, minimise
from agreements.model import Agreement, FieldRule, Purpose, Transform

CATALOG = load_catalog(default_catalog_dir())
AGREEMENTS = sorted(CATALOG.agreements)
PURPOSES = [str(p) for p in Purpose]
PATHS = sorted(DICTIONARY)
KEY = b"property-test-pseudonym-key!"
TODAY = date(2026, 11, 25)
SEGMENT = re.compile(r"\.|\[\*\]")

dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 11, 25)).map(date.isoformat)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12), dates
)
keys = st.one_of(st.sampled_from(["name", "identity", "code", "x", "dates"]), st.text(max_size=8))


def _build(parts: list[str], value: Any) -> Any:
    if not parts:
        return value
    if parts[0] == "[*]":
        return [_build(parts[1:], value)]
    return {parts[0]: _build(parts[1:], value)}


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        old = into.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            _merge(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            if isinstance(old[0], dict) and isinstance(value[0], dict):
                _merge(old[0], value[0])
            else:
                old.extend(value)
        elif key not in into:
            into[key] = value


def _insert(record: dict[str, Any], path: str, value: Any) -> None:
    """Put a value at a dictionary path, building objects and one-item lists on the way."""
    _merge(record, _build(re.findall(r"[a-z_0-9]+|\[\*\]", path), value))


@st.composite
def records(draw: st.DrawFn) -> dict[str, Any]:
    """Records mixing dictionary paths (with plausible values) and arbitrary extra keys."""
    record: dict[str, Any] = {}
    for path in draw(st.lists(st.sampled_from(PATHS), max_size=25, unique=True)):
        kind = DICTIONARY[path].type
        value = draw(dates if kind is ValueType.DATE else scalars)
        _insert(record, path, value)
    extra = draw(
        st.dictionaries(
            keys,
            st.recursive(
                scalars,
                lambda c: st.lists(c, max_size=3) | st.dictionaries(keys, c, max_size=3),
                max_leaves=6,
            ),
            max_size=4,
        )
    )
    for key, value in extra.items():
        record.setdefault(key, value)
    return record


def leaf_paths(value: Any, path: str = "") -> set[str]:
    if isinstance(value, dict):
        found: set[str] = set()
        for key, child in value.items():
            segment = key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", key) else UNSAFE_KEY
            found |= leaf_paths(child, f"{path}.{segment}" if path else segment)
        return found
    if isinstance(value, list):
        return set().union(*(leaf_paths(child, f"{path}[*]") for child in value))
    return {path}


def leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [
            pair
            for key, child in value.items()
            for pair in leaves(child, f"{path}.{key}" if path else key)
        ]
    if isinstance(value, list):
        return [pair for child in value for pair in leaves(child, f"{path}[*]")]
    return [(path, value)]


agreement_ids = st.sampled_from(AGREEMENTS)
purposes = st.sampled_from(PURPOSES)


@settings(max_examples=150, deadline=None)
@given(records(), agreement_ids, purposes)
def test_minimise_never_emits_a_path_the_rules_do_not_permit(
    record: dict[str, Any], agreement_id: str, purpose: str
) -> None:
    agreement = CATALOG.agreements[agreement_id]
    allowed = agreement.rules_for(purpose)
    result = minimise(record, agreement, purpose, pseudonym_key=KEY, today=TODAY)
    emitted = {path for path, _ in leaves(result.data)}
    assert emitted <= {p for p, t in allowed.items() if t is not Transform.DROP}
    assert set(result.sent) <= set(allowed)
    assert emitted == set(result.sent)


@settings(max_examples=150, deadline=None)
@given(records(), agreement_ids, purposes)
def test_every_leaf_path_is_either_sent_or_reported_removed(
    record: dict[str, Any], agreement_id: str, purpose: str
) -> None:
    agreement = CATALOG.agreements[agreement_id]
    result = minimise(record, agreement, purpose, pseudonym_key=KEY, today=TODAY)
    reported = set(result.sent) | set(result.removed)
    for path in leaf_paths(record) - {""}:
        # A permitted leaf holding a list or object is refused, and reported, as that leaf.
        assert path in reported or any(path.startswith((r + "[", r + ".")) for r in reported)


def single_rule(path: str, transform: Transform) -> Agreement:
    base = CATALOG.agreements["KM-NHS-LAC-001"]
    return base.model_copy(update={"fields": (FieldRule(path=path, transform=transform),)})


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 11, 25)))
def test_year_only_never_leaks_month_or_day(born: date) -> None:
    record = {"identity": {"date_of_birth": born.isoformat()}}
    out = minimise(
        record,
        single_rule("identity.date_of_birth", Transform.YEAR_ONLY),
        "looked_after_children_health",
        pseudonym_key=KEY,
        today=TODAY,
    )
    assert out.data == {"identity": {"date_of_birth": born.year}}


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(2026, 11, 25)))
def test_age_band_never_leaks_the_date(born: date) -> None:
    record = {"identity": {"date_of_birth": born.isoformat()}}
    out = minimise(
        record,
        single_rule("identity.date_of_birth", Transform.AGE_BAND),
        "looked_after_children_health",
        pseudonym_key=KEY,
        today=TODAY,
    )
    band = out.data["identity"]["date_of_birth"]
    assert re.fullmatch(r"\d{1,2}-\d{1,2}|85\+", band)
    assert str(born.year) not in band


@given(st.text(min_size=1, max_size=30))
def test_pseudonymise_never_contains_the_raw_value(value: str) -> None:
    record = {"identity": {"local_id": value}}
    out = minimise(
        record,
        single_rule("identity.local_id", Transform.PSEUDONYMISE),
        "looked_after_children_health",
        pseudonym_key=KEY,
        today=TODAY,
    )
    pseudonym = out.data["identity"]["local_id"]
    assert re.fullmatch(r"[0-9a-f]{64}", pseudonym)
    if len(value.strip()) >= 4:
        assert value.strip() not in pseudonym


@given(st.from_regex(r"[A-Z]{1,2}[0-9][0-9A-Z]? ?[0-9][A-Z]{2}", fullmatch=True))
def test_postcode_district_never_leaks_the_inward_code(postcode: str) -> None:
    record = {"identity": {"address": {"postcode": postcode}}}
    out = minimise(
        record,
        single_rule("identity.address.postcode", Transform.POSTCODE_DISTRICT),
        "looked_after_children_health",
        pseudonym_key=KEY,
        today=TODAY,
    )
    district = out.data["identity"]["address"]["postcode"]
    assert postcode.replace(" ", "").startswith(district)
    assert len(postcode.replace(" ", "")) - len(district) == 3


requests = st.builds(
    DisclosureRequest,
    st.sampled_from([*AGREEMENTS, "UNKNOWN-1"]),
    st.sampled_from([*PURPOSES, "nonsense"]),
    st.frozensets(st.sampled_from(["nhs_number", "local_id", "upn", "ni_number"])),
    st.booleans(),
    st.booleans(),
)
contexts = st.builds(
    DecisionContext,
    st.dates(min_value=date(2019, 1, 1), max_value=date(2031, 1, 1)),
    st.frozensets(st.sampled_from([*AGREEMENTS, "UNKNOWN-1"])),
    st.booleans(),
    st.booleans(),
)


@settings(max_examples=100, deadline=None)
@given(requests, contexts)
def test_decide_is_a_pure_function(request: DisclosureRequest, context: DecisionContext) -> None:
    agreement = CATALOG.agreement(request.agreement_id)
    first = decide(request, agreement, context)
    assert first == decide(request, agreement, context)
    assert (first.outcome == "denied") == any(code != "approval_required" for code in first.reasons)


@settings(max_examples=60, deadline=None)
@given(records(), agreement_ids, purposes)
def test_minimise_is_a_pure_function(
    record: dict[str, Any], agreement_id: str, purpose: str
) -> None:
    agreement = CATALOG.agreements[agreement_id]
    first = minimise(record, agreement, purpose, pseudonym_key=KEY, today=TODAY)
    assert first == minimise(record, agreement, purpose, pseudonym_key=KEY, today=TODAY)
