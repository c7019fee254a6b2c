"""The four-eyes rule and the approver's narrowing, as pure functions."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agreements.loader import default_catalog_dir, load_catalog
from gateway.application.four_eyes import (
    ApproverIdentity,
    ApproverIsRequesterError,
    ApproverNameInvalidError,
    ApproverNotForAgreementError,
    ApproverNotRegisteredError,
    FieldsNotPermittedError,
    approver_refusal,
    granted_fields,
    narrowed,
)
from gateway.store.approvers_repo import StoredApprover
from tests.unit.admin_fakes import NOW

POLICE = load_catalog(default_catalog_dir()).agreements["KM-POL-S2-011"]
ALLOWLIST = tuple(POLICE.rules_for("law_enforcement_request"))
# Staff identifiers as case systems issue them: letters, digits and a little punctuation.
STAFF_ID = st.text(string.ascii_letters + string.digits + "-._", min_size=1, max_size=40)
SPACE = st.text(" \t", max_size=3)


def _registered(name: str, *agreements: str) -> StoredApprover:
    return StoredApprover(name.casefold(), name, None, frozenset(agreements), "ig", NOW)


@given(STAFF_ID, SPACE, SPACE, st.booleans())
def test_the_requester_is_refused_however_the_name_is_spelt(
    name: str, before: str, after: str, upper: bool
) -> None:
    spelt = before + (name.upper() if upper else name.lower()) + after
    if upper:  # fullwidth forms of the same letters are the same identifier too
        spelt = spelt.translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    refusal = approver_refusal(
        spelt, requested_by=name, agreement_id=POLICE.id, registered=_registered(name, POLICE.id)
    )
    assert isinstance(refusal, ApproverIsRequesterError)


def test_only_an_approver_registered_for_the_agreement_may_decide() -> None:
    cases = [
        (None, ApproverNotRegisteredError),
        (_registered("cg-1", "KM-DWP-FR-012"), ApproverNotForAgreementError),
    ]
    for registered, error in cases:
        refusal = approver_refusal(
            "cg-1", requested_by="sw-1", agreement_id=POLICE.id, registered=registered
        )
        assert isinstance(refusal, error)
    allowed = approver_refusal(
        "cg-1",
        requested_by="sw-1",
        agreement_id=POLICE.id,
        registered=_registered("cg-1", POLICE.id),
    )
    assert allowed is None


@given(st.lists(st.sampled_from((*ALLOWLIST, "health.diagnoses[*].code", "x", " ")), max_size=8))
def test_a_narrowing_never_grants_a_field_outside_the_allowlist(requested: list[str]) -> None:
    chosen = granted_fields(requested, ALLOWLIST)
    if isinstance(chosen, FieldsNotPermittedError):
        assert not requested or any(path.strip() not in ALLOWLIST for path in requested)
        return
    assert chosen
    assert set(chosen) <= set(ALLOWLIST)
    kept = narrowed(POLICE, chosen)
    assert set(kept.rules_for("law_enforcement_request")) == set(chosen)
    assert (kept.id, kept.version, kept.lawful_basis) == (
        POLICE.id,
        POLICE.version,
        POLICE.lawful_basis,
    )


@pytest.mark.parametrize("name", ["", "   ", "a" * 129, "cg-1\nforged line"])
def test_an_approver_identity_is_a_real_staff_identifier(name: str) -> None:
    with pytest.raises(ApproverNameInvalidError):
        ApproverIdentity(name, login="jsmith")
