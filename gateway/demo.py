"""`gateway demo`: the whole journey on the embedded defaults, with simulated partners.

Starts the real service in-process (SQLite, embedded queue) with simulated partners on loopback
(one flaky, one answering receipts later, one receiving by email, one by SFTP: see
`demo_partners`), registers a client, drives example
disclosures through the HTTP API — allowed, denied with reasons, held then approved by a
registered approver who narrows the fields — waits for delivery and receipts, and prints the
outcome and the audit-chain verification.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from rich.console import Console
from rich.table import Table

from adapters.sftp import CLIENT_KEY_FILE, load_or_create_ssh_key, public_key_line
from agreements.loader import default_catalog_dir, load_catalog
from agreements.samples import adult_record, child_record
from gateway import audit
from gateway.application.approver_register import add_approver
from gateway.application.catalog_apply import apply_catalog
from gateway.application.client_systems import add_client
from gateway.application.four_eyes import ApproverIdentity
from gateway.application.optout_list import import_optout_list
from gateway.application.partner_key_admin import add_partner_key
from gateway.application.recipient_notices import NoticeKind, NoticeRequest
from gateway.audit_verify import JwksCheckpointVerifier, verify
from gateway.delivery.engine import DeliveryOptions
from gateway.demo_partners import SIMULATED, DemoPartners
from gateway.http.app import create_app
from gateway.partner_keys import PartnerKey
from gateway.partner_sim import PartnerSimulator
from gateway.service import Gateway
from gateway.settings import Settings, load_settings

DEMO = audit.Actor(audit.ActorKind.ADMIN, "demo-ig-officer")
OPTED_OUT = "9990000042"
MASH_SUBJECT = "9990000069"  # later told of a correction (Article 19)
ANNEX_B = {
    "requesting_officer": "DC 4471 Example",
    "rank": "Detective Constable",
    "authorising_officer": "DI 2290 Example (Inspector)",
    "requester_reference": "46/00000/26",
    "offence_or_prejudice": "Section 9 Theft Act burglary, crime ref 46/00000/26 (synthetic)",
    "prejudice": "The detection of the offence: the witness cannot be traced otherwise",
    "why_necessary": "To trace a witness's current address; no other source holds it",
    "data_requested": ["name", "current address"],
}
# The Caldicott Guardian decides the police request, and sends only what it asked for.
APPROVER = ApproverIdentity("demo-caldicott-guardian", DEMO.name)
APPROVED_FIELDS = (
    "identity.name",
    "identity.address.line1",
    "identity.address.town",
    "identity.address.postcode",
)


@dataclass
class Case:
    """One example request and what became of it."""

    label: str
    body: dict[str, Any]
    client: str = "mosaic-adults"
    disclosure_id: str | None = None
    http_status: int = 0
    reasons: tuple[str, ...] = ()
    approve: bool = False


def _cases() -> list[Case]:
    def body(
        agreement: str, purpose: str, record: dict[str, Any], nhs: str, **extra: Any
    ) -> dict[str, Any]:
        return {
            "agreement": agreement,
            "purpose": purpose,
            "subject": {"nhs_number": nhs, "local_id": f"MC-{nhs[-4:]}"},
            "record": record,
            "requested_by": {"user": "sw-0042", "role": "social_worker"},
            "reason": "Demo disclosure (synthetic data)",
            **extra,
        }

    adult, child = adult_record(), child_record()
    return [
        Case("home care package", body("KM-DOM-006", "direct_care", adult, "9990000026")),
        Case("care home placement", body("KM-RES-007", "direct_care", adult, "9990000034")),
        Case("care home review", body("KM-RES-007", "direct_care", adult, "9990000050")),
        Case("out-of-hours emergency", body("KM-KCC-OOH-009", "emergency", child, "9990000018")),
        Case(
            "MASH safeguarding referral",
            body("KM-POL-SG-018", "safeguarding_children", child, MASH_SUBJECT),
        ),
        Case(
            "police Schedule 2 request (approved)",
            body("KM-POL-S2-011", "law_enforcement_request", adult, "9990000077", annex_b=ANNEX_B),
            approve=True,
        ),
        Case(
            "MAPPA referral (by email)",
            body("KM-PRB-016", "crime_prevention", adult, "9990000115"),
        ),
        Case(
            "children in need census (by SFTP)",
            body("KM-DFE-CIN-013", "statutory_return", child, "9990000123"),
            client="education-system",
        ),
        Case("wrong purpose", body("KM-DOM-006", "research", adult, "9990000085")),
        Case(
            "suspended agreement",
            body("EXAMPLE-SUSPENDED-001", "care_assessment", adult, "9990000093"),
        ),
        Case("national data opt-out", body("KM-ICB-COM-004", "commissioning", adult, OPTED_OUT)),
        Case(
            "client not authorised",
            body("KM-DOM-006", "direct_care", adult, "9990000107"),
            client="education-system",
        ),
    ]


def catalog_with_endpoints(root: Path, endpoints: Mapping[str, str | dict[str, Any]]) -> Path:
    """A copy of the example catalog with the simulated partners on loopback: a webhook
    endpoint, or a whole channel entry."""
    target = root / "catalog"
    shutil.copytree(default_catalog_dir(), target)
    partners_file = target / "partners.yaml"
    document = yaml.safe_load(partners_file.read_text())
    for partner in document["partners"]:
        found = endpoints.get(partner["id"])
        if isinstance(found, str):
            partner["channel"] = {"type": "webhook", "endpoint": found}
        elif found is not None:
            partner["channel"] = {**partner["channel"], **found}
    partners_file.write_text(yaml.safe_dump(document, sort_keys=False))
    return target


async def _submit(
    session: aiohttp.ClientSession, url: str, tokens: dict[str, str], case: Case
) -> None:
    headers = {"Authorization": f"Bearer {tokens[case.client]}"}
    async with session.post(f"{url}/v1/disclosures", json=case.body, headers=headers) as resp:
        reply = await resp.json()
    case.http_status = resp.status
    case.disclosure_id = reply.get("id")
    case.reasons = tuple(reply.get("reasons", ()))


async def _views(
    session: aiohttp.ClientSession, url: str, tokens: dict[str, str], cases: list[Case]
) -> dict[str, dict[str, Any]]:
    views = {}
    for case in cases:
        if case.disclosure_id is None:
            continue
        headers = {"Authorization": f"Bearer {tokens[case.client]}"}
        async with session.get(f"{url}/v1/disclosures/{case.disclosure_id}", headers=headers) as r:
            views[case.disclosure_id] = await r.json()
    return views


def _table(cases: list[Case], views: dict[str, dict[str, Any]]) -> Table:
    table = Table(title="What happened to each disclosure", show_lines=False)
    for column in ("request", "agreement", "partner", "status", "why / how", "fields sent/removed"):
        table.add_column(column)
    for case in cases:
        view = views.get(case.disclosure_id or "", {})
        events = [e["type"] for e in view.get("events", [])]
        status = view.get("status", f"HTTP {case.http_status}")
        how = ", ".join(case.reasons) if case.reasons else " > ".join(events)
        fields = f"{len(view.get('fields_sent', []))}/{len(view.get('fields_removed', []))}"
        table.add_row(
            case.label, case.body["agreement"], view.get("partner", ""), status, how, fields
        )
    return table


async def _provision(
    gateway: Gateway, catalog_dir: Path, sims: dict[str, PartnerSimulator]
) -> dict[str, str]:
    """What an IG officer does with gateway-admin: catalog, partner keys, clients, opt-outs."""
    now = gateway.clock()
    catalog = load_catalog(catalog_dir)
    await apply_catalog(gateway.store, catalog, actor=DEMO, at=now)
    store = gateway.store
    for pid, sim in sims.items():
        enc, sig = sim.public_keys()
        for jwk, use in ((enc, "enc"), (sig, "sig")):
            key = PartnerKey.from_jwk(pid, jwk, use=use, not_before=now - timedelta(minutes=1))  # type: ignore[arg-type]
            await add_partner_key(store, key, actor=DEMO, at=now)
    clients = {"mosaic-adults": catalog.agreements, "education-system": ["KM-DFE-CIN-013"]}
    tokens = {
        name: (await add_client(store, name, agreements, actor=DEMO, at=now)).token
        for name, agreements in clients.items()
    }
    await add_approver(
        store,
        APPROVER.name,
        ["KM-POL-S2-011"],
        role="caldicott_guardian",
        actor=DEMO,
        at=now,
    )
    await import_optout_list(
        store,
        [OPTED_OUT],
        protection=gateway.protection,
        list_version="demo",
        invalid_lines=0,
        actor=DEMO,
        at=now,
    )
    await gateway.policy.refresh()
    return tokens


async def _wait(
    session: aiohttp.ClientSession,
    url: str,
    tokens: dict[str, str],
    cases: list[Case],
    wait_seconds: float,
) -> dict[str, dict[str, Any]]:
    """Poll until every disclosure is in a final state (or the deadline passes)."""
    deadline = time.monotonic() + wait_seconds
    final = {"receipted", "failed", "denied", "rejected"}
    while True:
        views = await _views(session, url, tokens, cases)
        if all(v.get("status") in final for v in views.values()) or time.monotonic() > deadline:
            return views
        await asyncio.sleep(0.2)


async def _article_19_notice(gateway: Gateway, console: Console, wait_seconds: float) -> bool:
    """The MASH referral's abuse category was recorded wrongly: tell whoever received it."""
    run = await gateway.notices.send(
        NoticeRequest(
            nhs_number=MASH_SUBJECT,
            kind=NoticeKind.RECTIFICATION,
            reason="Category of abuse corrected after the strategy discussion (demo)",
            fields=("social_care.cp_plan.category",),
            corrections={"social_care.cp_plan.category": "emotional"},
            actor=DEMO,
        )
    )
    deadline = time.monotonic() + wait_seconds
    while True:
        found = await gateway.notices.about(MASH_SUBJECT)
        done = [n for n in found if n.status in ("receipted", "failed") or n.not_sent]
        if len(done) == len(found) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    for notice in found:
        state = notice.not_sent or notice.status
        console.print(
            f"Article 19 {notice.record.kind} notice to {notice.record.partner_id} about "
            f"{', '.join(notice.record.paths)}: {state}"
        )
    return bool(run.notices) and all(n.status == "receipted" for n in found)


async def run_demo(
    console: Console, *, keep: Path | None = None, wait_seconds: float = 90.0
) -> bool:
    """Run the journey; True when every accepted disclosure ended receipted and audit verifies."""
    root = keep or Path(tempfile.mkdtemp(prefix="gatehouse-demo-"))
    # The API's socket is bound first: the simulated partners need its address to start.
    listener = socket.create_server(("127.0.0.1", 0))
    host, port = listener.getsockname()[:2]
    url = f"http://{host}:{port}"
    council_ssh = load_or_create_ssh_key(root / "keys" / CLIENT_KEY_FILE)
    partners = DemoPartners(
        root,
        council_url=url,
        council_id=_settings(root).org_id,
        council_ssh=public_key_line(council_ssh),
    )
    try:
        channels = await partners.start()
        settings = _settings(root, **partners.smtp_settings())
        gateway = await Gateway.open(
            settings,
            deliver=True,
            delivery_options=DeliveryOptions(
                poll_interval=0.05, deadline_interval=1.0, sftp_poll_interval=0.5
            ),
        )
    except BaseException:
        listener.close()
        await partners.stop()
        raise
    await gateway.start()
    runner = web.AppRunner(create_app(gateway), access_log=None)
    await runner.setup()
    await web.SockSite(runner, listener).start()
    sims = partners.sims
    try:
        tokens = await _provision(gateway, catalog_with_endpoints(root, channels), sims)
        console.print(
            f"[bold]Gatehouse[/] running at {url}; simulated partners: "
            + ", ".join(f"{p} ({SIMULATED[p].behaviour})" for p in sims)
        )
        cases = _cases()
        async with aiohttp.ClientSession() as session:
            for case in cases:
                await _submit(session, url, tokens, case)
            for case in cases:
                if case.approve and case.disclosure_id:
                    await gateway.approvals.approve(
                        case.disclosure_id,
                        approver=APPROVER,
                        reason="Necessary and proportionate (demo)",
                        fields=APPROVED_FIELDS,
                    )
            views = await _wait(session, url, tokens, cases, wait_seconds)
        console.print(_table(cases, views))
        told = await _article_19_notice(gateway, console, wait_seconds)
        await gateway.sealer.seal_now()
        report = await verify(
            gateway.store,
            JwksCheckpointVerifier(gateway.keyring.verification_keys(gateway.clock())),
            now=gateway.clock(),
        )
        console.print(
            f"audit chain: {'verified' if report.ok else 'BROKEN'} "
            f"({report.as_dict().get('entries', '?')} entries)"
        )
        for pid, sim in sims.items():
            ledger = sim.ledger
            statuses = sorted({v["status"] for v in views.values() if v.get("partner") == pid})
            console.print(
                f"partner {pid} ({SIMULATED[pid].channel}): {ledger.arrivals} envelope(s) "
                f"received, {ledger.duplicates} duplicate(s) recognised by message id; "
                f"disclosures {', '.join(statuses) or 'none'}"
            )
        console.print(f"database and keys kept in {root}")
        accepted = [v for v in views.values() if v["status"] not in ("denied", "rejected")]
        return told and report.ok and all(v["status"] == "receipted" for v in accepted)
    finally:
        await runner.cleanup()
        await gateway.close(5)
        await partners.stop()


def _settings(root: Path, **channel: Any) -> Settings:
    """The demo's settings: everything under `root`, quick retries, insecure loopback allowed."""
    return load_settings(
        database_url=f"sqlite+aiosqlite:///{root / 'gatehouse.db'}",
        keys_dir=root / "keys",
        port=0,
        allow_insecure_loopback=True,
        retry_delays="1s,2s,3s,5s",
        retry_max_attempts=8,
        log_level="warning",
        **channel,
    )
