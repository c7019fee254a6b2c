"""Shared set-up for the benchmarks: a seeded embedded gateway in a temporary folder."""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from agreements.loader import default_catalog_dir, load_catalog
from gateway import audit
from gateway.application.catalog_apply import apply_catalog
from gateway.application.client_systems import add_client
from gateway.application.partner_key_admin import add_partner_key
from gateway.partner_keys import PartnerKey, generate_partner_keys, public_jwk
from gateway.service import Gateway
from gateway.settings import Settings, load_settings

BENCH = audit.Actor(audit.ActorKind.ADMIN, "benchmark")


@dataclass
class Seeded:
    """What a benchmark needs: settings, env for a subprocess, a client token, partner keys."""

    settings: Settings
    env: dict[str, str]
    token: str
    partner_keys: dict[str, tuple[dict[str, Any], dict[str, Any]]]


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def seed(
    folder: Path | None = None, *, database_url: str | None = None, **settings_extra: Any
) -> Seeded:
    """Apply the example catalog, give every partner keys, add one client for all agreements."""
    root = folder or Path(tempfile.mkdtemp(prefix="gatehouse-bench-"))
    settings = load_settings(
        database_url=database_url or f"sqlite+aiosqlite:///{root / 'gatehouse.db'}",
        keys_dir=root / "keys",
        port=free_port(),
        ops_port=free_port(),
        **settings_extra,
    )
    now = datetime.now(UTC)
    gateway = await Gateway.open(settings)
    keys: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    try:
        catalog = load_catalog(default_catalog_dir())
        await apply_catalog(gateway.store, catalog, actor=BENCH, at=now)
        for partner_id in catalog.partners:
            enc, sig = generate_partner_keys("ec")
            keys[partner_id] = (enc, sig)
            uses: tuple[tuple[dict[str, Any], Literal["enc", "sig"]], ...] = (
                (enc, "enc"),
                (sig, "sig"),
            )
            for jwk, use in uses:
                key = PartnerKey.from_jwk(
                    partner_id, public_jwk(jwk), use=use, not_before=now - timedelta(days=1)
                )
                await add_partner_key(gateway.store, key, actor=BENCH, at=now)
        issued = await add_client(
            gateway.store, "bench-client", catalog.agreements, actor=BENCH, at=now
        )
        token = issued.token
    finally:
        await gateway.close()
    env = {
        "GATEWAY_DATABASE_URL": settings.resolved_database_url,
        "GATEWAY_KEYS_DIR": str(settings.keys_dir),
        "GATEWAY_PORT": str(settings.port),
        "GATEWAY_OPS_PORT": str(settings.ops_port),
        # One client system drives every connection: its in-flight cap must not be the limit.
        "GATEWAY_CLIENT_CONCURRENCY": "1024",
        # No GATEWAY_LOG_LEVEL: the service logs at its default (info), as deployed.
    }
    return Seeded(settings, env, token, keys)


def reference_loop_ms() -> float:
    """Best of 5 timings of a fixed pure-Python loop, in ms: this machine's speed right now.

    The benchmark machines are shared virtual machines whose speed moves from one session to
    the next (and within one, by up to 2x); printing this beside a figure lets figures taken on
    different days be compared (a run at 2x the reference is a machine at half speed).
    """
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        total = 0
        for i in range(1_000_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return best * 1000


PG = os.environ.get("GATEHOUSE_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")


async def fresh_postgres() -> tuple[str, Callable[[], Awaitable[None]]]:
    """A throw-away PostgreSQL database: its URL, and a function that drops it."""
    import asyncpg

    name = f"ghbench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(PG.replace("postgresql+asyncpg", "postgresql"))
    await admin.execute(f'CREATE DATABASE "{name}"')

    async def drop() -> None:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()

    return PG.rsplit("/", 1)[0] + f"/{name}", drop
