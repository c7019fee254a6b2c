"""A failing SQL statement's error never carries the row's values into a log line."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import structlog
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from gateway.logging import configure_logging
from gateway.store.database import Store
from gateway.store.tables import clients

STAFF_SECRET = "staff-0042-synthetic-value"


async def test_a_constraint_error_logs_no_parameter_or_key_value(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = await Store.open(database_url)
    try:
        await store.upgrade()
        row = {
            "name": "dup",
            "token_hash": STAFF_SECRET,
            "allowed_agreements": [STAFF_SECRET],
            "status": "active",
            "created_at": datetime.now(UTC),
        }

        async def twice(conn: object) -> None:
            await conn.execute(insert(clients), row)  # type: ignore[attr-defined]
            await conn.execute(insert(clients), {**row, "name": "other"})  # type: ignore[attr-defined]

        with pytest.raises(IntegrityError) as caught:
            await store.write(twice)
    finally:
        await store.close()
    assert STAFF_SECRET not in str(caught.value).split("DETAIL")[0]  # the parameters are hidden
    assert "hide_parameters=True" in str(caught.value)
    configure_logging("json", "info")
    try:
        raise caught.value
    except IntegrityError:
        structlog.get_logger("test").exception("write_failed")
    err = capsys.readouterr().err
    line = json.loads(err.strip().splitlines()[-1])
    assert (
        "IntegrityError" in line["exception"]
    )  # the error is logged, so the check means something
    assert STAFF_SECRET not in err
