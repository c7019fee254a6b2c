"""`gateway-admin deadletters list|replay|reconcile`: failed deliveries, seen, sent again once
fixed, and reconciled with the broker's dead-letter queues."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated

import typer

from gateway.application.dead_letter_reconcile import (
    QUIET_AFTER,
    ReconcileReport,
    reconcile_dead_letters,
)
from gateway.cli.common import EXIT_USAGE, fail, print_json, print_table
from gateway.cli.context import AdminContext, run_async
from gateway.clock import utc_now
from gateway.delivery.dead_letters import ReplayResult, list_dead_letters, replay
from gateway.queue.rabbit import RabbitTransport
from gateway.queue.retry import RetryPolicyError, delay_name, parse_delay
from gateway.queue.topology import TopologyError, build_topology, check_partner_id
from gateway.settings import Settings
from gateway.store import partners_repo
from gateway.store.database import Store

deadletters_app = typer.Typer(
    help="Failed deliveries (dead letters): list them, replay them once the cause is fixed.",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="One JSON document for scripts.")]
PartnerOption = Annotated[str | None, typer.Option("--partner", help="Only this partner id.")]


@deadletters_app.command("list")
def list_command(
    partner: PartnerOption = None,
    as_json: JsonFlag = False,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 1000,
) -> None:
    """Failed disclosures whose envelope can be sent again, oldest failure first."""

    async def work(ctx: AdminContext) -> list[dict[str, object]]:
        found = await list_dead_letters(ctx.store, partner=partner, limit=limit)
        return [d.to_dict() for d in found]

    rows = run_async(work)
    if as_json:
        print_json({"dead_letters": rows, "count": len(rows)})
        return
    columns = ("disclosure_id", "partner", "agreement", "reason", "attempts", "failed_at")
    print_table(f"Dead letters ({len(rows)})", columns, [[r[c] for c in columns] for r in rows])


@deadletters_app.command("replay")
def replay_command(
    disclosure_id: Annotated[
        str | None, typer.Argument(help="The disclosure to send again.", show_default=False)
    ] = None,
    partner: PartnerOption = None,
    actor: Annotated[str | None, typer.Option(help="Who is acting (default: the OS user).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Send a dead letter again (the same envelope), or every one of a partner's; audited."""
    if (disclosure_id is None) == (partner is None):
        raise fail("give a disclosure id or --partner (one of them)", EXIT_USAGE)
    ids = [disclosure_id] if disclosure_id is not None else None
    result = run_async(lambda ctx: _replay(ctx, ids, partner), actor=actor)
    if as_json:
        print_json(result.to_dict())
    else:
        rows = [[i, "replayed", "dead-letter queue"] for i in result.from_broker]
        rows += [[i, "replayed", "outbox"] for i in result.from_outbox]
        rows += [[i, "refused", code] for i, code in result.refused.items()]
        print_table("Replay", ("disclosure_id", "result", "via / reason"), rows)
    if disclosure_id is not None and result.refused:
        raise typer.Exit(1)


async def _replay(ctx: AdminContext, ids: list[str] | None, partner: str | None) -> ReplayResult:
    partners = await _partners_of(ctx.store, ids, partner) if ctx.settings.broker_url else []
    async with _broker(ctx.settings, partners) as transport:
        return await replay(
            ctx.store, actor=ctx.actor, clock=utc_now, ids=ids, partner=partner, broker=transport
        )


@asynccontextmanager
async def _broker(settings: Settings, partners: list[str]) -> AsyncIterator[RabbitTransport | None]:
    """The broker with these partners' queues, when one is configured (else None)."""
    if not settings.broker_url:
        yield None
        return
    topology = build_topology(
        settings.broker_prefix,
        partners,
        settings.retry_policy,
        delivery_limit=settings.delivery_limit,
    )
    transport = await RabbitTransport.connect(
        settings.broker_url, topology, connection_name="gatehouse-admin"
    )
    try:
        yield transport
    finally:
        await transport.close(0)


async def _partners_of(store: Store, ids: list[str] | None, partner: str | None) -> list[str]:
    """The partners whose dead-letter queues the replay will look in."""
    if partner is not None:
        return [partner]
    found = await list_dead_letters(store)
    wanted = set(ids or ())
    return sorted({d.partner_id for d in found if d.disclosure_id in wanted})


@deadletters_app.command("reconcile")
def reconcile_command(
    quiet_after: Annotated[
        str,
        typer.Option(
            "--quiet-after",
            help="Requeue a published envelope with no attempt due for this long (e.g. 2h).",
        ),
    ] = delay_name(QUIET_AFTER),
    as_json: JsonFlag = False,
) -> None:
    """Record `failed` for dead letters the database never heard of; requeue lost envelopes.

    Workers also run this at start and every few minutes; it is safe to run at any time.
    """
    try:
        quiet = parse_delay(quiet_after)
    except RetryPolicyError as exc:
        raise fail(f"--quiet-after: {exc.message}", EXIT_USAGE) from None
    report = run_async(lambda ctx: _reconcile(ctx, quiet))
    if as_json:
        print_json(report.to_dict())
        return
    rows = [[i, "failed", reason or ""] for i, reason in report.failed.items()]
    rows += [[i, "requeued", "no_attempt_due"] for i in report.requeued]
    title = f"Reconciled ({report.parked_seen} parked in dead-letter queues)"
    print_table(title, ("disclosure_id", "now", "last reason"), rows)


async def _reconcile(ctx: AdminContext, quiet_after: timedelta) -> ReconcileReport:
    partners: list[str] = []
    if ctx.settings.broker_url:
        async with ctx.store.read() as conn:
            partners = [p.id for p in await partners_repo.all_partners(conn) if _queue_safe(p.id)]
    async with _broker(ctx.settings, partners) as transport:
        return await reconcile_dead_letters(
            ctx.store, clock=utc_now, broker=transport, quiet_after=quiet_after
        )


def _queue_safe(partner: str) -> bool:
    """Partner ids a queue name cannot hold have no queues to look in (the workers skip them)."""
    try:
        check_partner_id(partner)
    except TopologyError:
        return False
    return True
