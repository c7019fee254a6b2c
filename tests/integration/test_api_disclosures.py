"""POST /v1/disclosures and GET /v1/disclosures/{id}: every status code of the contract."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from agreements.samples import adult_record
from gateway.store.tables import audit_log, audit_pending
from tests.gateway_support import Harness, adult_submission, lac_submission

Client = TestClient[Any, Any]


def _auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


async def test_allowed_disclosure_is_queued_and_visible(api: Client, harness: Harness) -> None:
    resp = await api.post("/v1/disclosures", json=lac_submission(), headers=_auth(harness.token()))
    assert resp.status == 202
    body = await resp.json()
    assert body["status"] == "queued"
    view = await api.get(f"/v1/disclosures/{body['id']}", headers=_auth(harness.token()))
    assert view.status == 200
    data = await view.json()
    assert data["agreement"] == {"id": "KM-NHS-LAC-001", "version": data["agreement"]["version"]}
    assert data["partner"] == "medway-ft"
    assert "identity.date_of_birth" in data["fields_sent"]
    assert "household[*].name" in data["fields_removed"]
    assert [event["type"] for event in data["events"]] == ["accepted"]
    assert data["receipt"] is None


async def test_denied_disclosure_lists_every_reason(api: Client, harness: Harness) -> None:
    body = lac_submission(purpose="research")
    resp = await api.post("/v1/disclosures", json=body, headers=_auth(harness.token("education")))
    assert resp.status == 403
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    assert set(problem["reasons"]) == {"purpose_not_permitted", "client_not_authorised"}
    view = await api.get(
        f"/v1/disclosures/{problem['id']}", headers=_auth(harness.token("education"))
    )
    assert (await view.json())["status"] == "denied"


async def test_reasons_reachable_through_the_api(api: Client, harness: Harness) -> None:
    cases = {
        "agreement_not_found": lac_submission(agreement="NO-SUCH-AGREEMENT"),
        "agreement_not_active": adult_submission(
            agreement="EXAMPLE-SUSPENDED-001", purpose="care_assessment"
        ),
        "agreement_expired": lac_submission(
            agreement="EXAMPLE-EXPIRED-001", purpose="hospital_discharge"
        ),
        "agreement_review_overdue": lac_submission(agreement="KM-RSP-008", purpose="direct_care"),
        "purpose_not_permitted": lac_submission(purpose="direct_care"),
        "unknown_purpose": lac_submission(purpose="curiosity"),
        "subject_identifier_missing": adult_submission(
            agreement="KM-ICB-COM-004", purpose="commissioning", subject={"local_id": "X1"}
        ),
    }
    for code, body in cases.items():
        resp = await api.post("/v1/disclosures", json=body, headers=_auth(harness.token()))
        assert resp.status == 403, code
        assert code in (await resp.json())["reasons"], code


async def test_client_may_use_only_its_agreements(api: Client, harness: Harness) -> None:
    resp = await api.post(
        "/v1/disclosures", json=lac_submission(), headers=_auth(harness.token("education"))
    )
    assert resp.status == 403
    assert "client_not_authorised" in (await resp.json())["reasons"]


async def test_client_sees_only_its_own_disclosures(api: Client, harness: Harness) -> None:
    resp = await api.post("/v1/disclosures", json=lac_submission(), headers=_auth(harness.token()))
    disclosure_id = (await resp.json())["id"]
    other = await api.get(
        f"/v1/disclosures/{disclosure_id}", headers=_auth(harness.token("education"))
    )
    assert other.status == 404
    missing = await api.get("/v1/disclosures/nope", headers=_auth(harness.token()))
    assert missing.status == 404


async def test_unauthenticated_requests_get_401(api: Client) -> None:
    assert (await api.post("/v1/disclosures", json=lac_submission())).status == 401
    bad = await api.post("/v1/disclosures", json=lac_submission(), headers=_auth("x" * 43))
    assert bad.status == 401
    assert bad.headers["WWW-Authenticate"] == "Bearer"
    assert (await api.get("/v1/disclosures/x")).status == 401


async def test_malformed_body_is_422_and_never_echoes_values(api: Client, harness: Harness) -> None:
    marker = "MARKER-7f3a-not-an-nhs-number"
    body = lac_submission(subject={"nhs_number": marker}, requested_by={"user": "u"})
    resp = await api.post("/v1/disclosures", json=body, headers=_auth(harness.token()))
    assert resp.status == 422
    text = await resp.text()
    assert marker not in text
    fields = {error["field"] for error in json.loads(text)["errors"]}
    assert {"subject.nhs_number", "requested_by.role"} <= fields


async def test_not_json_and_wrong_type(api: Client, harness: Harness) -> None:
    headers = _auth(harness.token(), **{"Content-Type": "application/json"})
    assert (await api.post("/v1/disclosures", data=b"{not json", headers=headers)).status == 400
    for body in (b'{"agreement": NaN}', b'{"reason": "\xff"}', b"[" * 5000 + b"]" * 5000):
        resp = await api.post("/v1/disclosures", data=body, headers=headers)
        assert (resp.status, (await resp.json())["code"]) == (400, "body_not_json"), body[:20]
    plain = _auth(harness.token(), **{"Content-Type": "text/plain"})
    assert (await api.post("/v1/disclosures", data=b"{}", headers=plain)).status == 415


async def test_idempotency_same_body_same_answer_other_body_409(
    api: Client, harness: Harness
) -> None:
    headers = _auth(harness.token(), **{"Idempotency-Key": "case-123-attempt"})
    first = await api.post("/v1/disclosures", json=lac_submission(), headers=headers)
    again = await api.post("/v1/disclosures", json=lac_submission(), headers=headers)
    assert first.status == again.status == 202
    assert (await first.json())["id"] == (await again.json())["id"]
    other = await api.post("/v1/disclosures", json=lac_submission(reason="other"), headers=headers)
    assert other.status == 409
    assert (await other.json())["code"] == "idempotency_key_reused"


async def test_concurrent_duplicates_make_one_disclosure(api: Client, harness: Harness) -> None:
    headers = _auth(harness.token(), **{"Idempotency-Key": "concurrent-key"})
    replies = await asyncio.gather(
        *(api.post("/v1/disclosures", json=lac_submission(), headers=headers) for _ in range(8))
    )
    ids = {(await reply.json())["id"] for reply in replies}
    assert {reply.status for reply in replies} == {202}
    assert len(ids) == 1


async def test_approval_required_is_held(api: Client, harness: Harness) -> None:
    body = adult_submission(
        agreement="KM-POL-S2-011",
        purpose="law_enforcement_request",
        annex_b={
            "requesting_officer": "DC 1234 Example",
            "rank": "Detective Constable",
            "authorising_officer": "DI 5678 Example",
            "requester_reference": "46/00000/26",
            "offence_or_prejudice": "Investigation of a burglary (synthetic)",
            "prejudice": "Detection of the offence",
            "why_necessary": "To locate a witness; no other source",
            "data_requested": ["current address"],
        },
    )
    resp = await api.post("/v1/disclosures", json=body, headers=_auth(harness.token()))
    assert resp.status == 202, await resp.text()
    assert (await resp.json())["status"] == "pending_approval"


async def test_partner_without_a_deliverable_channel_is_refused(
    api: Client, harness: Harness
) -> None:
    body = lac_submission(agreement="KM-RSP-008", purpose="direct_care")  # by secure email
    resp = await api.post("/v1/disclosures", json=body, headers=_auth(harness.token()))
    assert resp.status == 403
    assert "partner_channel_unavailable" in (await resp.json())["reasons"]


async def test_sftp_partner_is_accepted(api: Client, harness: Harness) -> None:
    body = lac_submission(agreement="KM-DFE-CIN-013", purpose="statutory_return")
    resp = await api.post("/v1/disclosures", json=body, headers=_auth(harness.token()))
    assert resp.status == 202, await resp.text()


async def test_nhs_number_failing_modulus_11_is_422_naming_the_field(
    api: Client, harness: Harness
) -> None:
    typo = "9990000019"  # the valid 9990000018 with its check digit mistyped
    body = lac_submission(subject={"nhs_number": typo, "local_id": "MC-C-000123"})
    resp = await api.post("/v1/disclosures", json=body, headers=_auth(harness.token()))
    assert resp.status == 422
    text = await resp.text()
    assert typo not in text
    errors = json.loads(text)["errors"]
    assert [error["field"] for error in errors] == ["subject.nhs_number"]
    assert "modulus 11" in errors[0]["message"]
    # The same body with the right check digit is accepted: the check, not the shape, refused it.
    good = lac_submission(subject={"nhs_number": "9990000018", "local_id": "MC-C-000123"})
    assert (
        await api.post("/v1/disclosures", json=good, headers=_auth(harness.token()))
    ).status == 202


async def test_wrong_typed_values_are_refused_and_listed_never_sent(
    api: Client, harness: Harness
) -> None:
    marker = "1234 (key safe code) MARKER-5d1e"
    record = adult_record()
    record["accommodation"]["key_safe"] = marker  # text in a yes/no field
    record["identity"]["date_of_birth"] = "diabetes MARKER-5d1e"  # a diagnosis in a date field
    record["identity"]["phone"] = "0" * 21  # longer than the field's maximum
    body = adult_submission(record=record)
    resp = await api.post("/v1/disclosures", json=body, headers=_auth(harness.token()))
    assert resp.status == 202
    disclosure_id = (await resp.json())["id"]
    view = await api.get(f"/v1/disclosures/{disclosure_id}", headers=_auth(harness.token()))
    text = await view.text()
    assert "MARKER-5d1e" not in text
    data = json.loads(text)
    assert data["fields_refused"] == [
        {"path": "identity.date_of_birth", "code": "type_mismatch"},
        {"path": "identity.phone", "code": "too_long"},
        {"path": "accommodation.key_safe", "code": "type_mismatch"},
    ]
    for refused in data["fields_refused"]:
        assert refused["path"] in data["fields_removed"]
        assert refused["path"] not in data["fields_sent"]
    async with harness.gateway.store.read() as conn:
        rows = [
            *(await conn.execute(select(audit_log.c.action, audit_log.c.details))),
            *(await conn.execute(select(audit_pending.c.action, audit_pending.c.details))),
        ]
    audited = [json.loads(d) if isinstance(d, str) else d for _, d in rows]
    details = [d for d in audited if d.get("fields_refused")]
    assert [d["fields_refused"] for d in details] == [data["fields_refused"]]
    assert "MARKER-5d1e" not in json.dumps(audited)
