"""The store through a real PgBouncer in transaction mode (Debian's, no prepared statements).

A representative subset of the store's integration tests runs here again with `database_url`
pointing at PgBouncer with `?pgbouncer=true`; the control test shows the same path fails
without it, so passing means something.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from gateway.http.app import create_app
from gateway.store.database import Store
from gateway.store.tables import disclosures
from tests.gateway_support import adult_submission, build_harness, isolated_settings
from tests.integration import (
    test_group_commit,
    test_store_disclosures,
    test_store_outbox,
    test_store_setwise,
)
from tests.pgbouncer import running_pgbouncer
from tests.services import fresh_postgres_database

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pgbouncer_port() -> Iterator[int]:
    """One PgBouncer for the module."""
    with running_pgbouncer() as port:
        yield port


@pytest.fixture
def direct_url() -> Iterator[str]:
    """A fresh database, its URL straight to PostgreSQL."""
    with fresh_postgres_database() as url:
        yield url


def _through(url: str, port: int, *, flag: bool = True) -> str:
    through = make_url(url).set(port=port)
    if flag:
        through = through.update_query_dict({"pgbouncer": "true"})
    return through.render_as_string(hide_password=False)


@pytest.fixture
def database_url(direct_url: str, pgbouncer_port: int) -> str:
    """The store tests below, through PgBouncer."""
    return _through(direct_url, pgbouncer_port)


test_record_accepted_writes_row_events_outbox_and_audit = (
    test_store_disclosures.test_record_accepted_writes_row_events_outbox_and_audit
)
test_status_machine_allows_only_legal_moves = (
    test_store_disclosures.test_status_machine_allows_only_legal_moves
)
test_held_record_is_sealed_then_released_on_approval = (
    test_store_disclosures.test_held_record_is_sealed_then_released_on_approval
)
test_claim_lease_release_and_publish = test_store_outbox.test_claim_lease_release_and_publish
test_concurrent_claimers_never_share_a_row = (
    test_store_outbox.test_concurrent_claimers_never_share_a_row
)
test_a_batch_judges_each_move_against_the_status_the_last_one_left = (
    test_store_setwise.test_a_batch_judges_each_move_against_the_status_the_last_one_left
)
test_an_embedded_claim_respects_each_partners_room_and_reads_the_disclosures = (
    test_store_setwise.test_an_embedded_claim_respects_each_partners_room_and_reads_the_disclosures
)
test_concurrent_work_commits_and_returns_each_result = (
    test_group_commit.test_concurrent_work_commits_and_returns_each_result
)
test_one_failing_item_fails_alone = test_group_commit.test_one_failing_item_fails_alone
store = test_group_commit.store  # its fixture, on this module's database_url


async def test_the_whole_submit_path_through_pgbouncer(
    direct_url: str, pgbouncer_port: int, tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = isolated_settings(tmp_path, _through(direct_url, pgbouncer_port))
    harness = await build_harness(settings)
    try:
        api = await aiohttp_client(create_app(harness.gateway))
        headers = {"Authorization": f"Bearer {harness.token()}"}
        ids = []
        for _ in range(5):
            response = await api.post("/v1/disclosures", json=adult_submission(), headers=headers)
            assert response.status == 202, await response.text()
            ids.append((await response.json())["id"])
        for disclosure_id in ids:
            assert (
                await api.get(f"/v1/disclosures/{disclosure_id}", headers=headers)
            ).status == 200
    finally:
        await harness.gateway.close()


async def _count_many_times(store: Store) -> None:
    for _ in range(20):
        async with store.read() as conn:
            await conn.execute(select(func.count()).select_from(disclosures))


async def test_control_without_the_flag_prepared_statements_break(
    direct_url: str, pgbouncer_port: int
) -> None:
    """asyncpg's numbered, cached statements do not survive PgBouncer's transaction pooling."""
    store = await Store.open(_through(direct_url, pgbouncer_port, flag=False))
    try:
        await store.upgrade()
        with pytest.raises(Exception):  # noqa: B017, PT011 - any driver error shows the fault
            await _count_many_times(store)
    finally:
        await store.close()
