"""What taking a receipt reads and writes: the disclosure it names, the receipt with its status
move (set-wise, group-committed), and the audit entry of a refusal."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.audit_entry import SYSTEM
from gateway.store import audit_log, disclosures, receipt_rows, status_moves
from gateway.store.database import Store
from gateway.store.disclosure_model import Disclosure, Status
from gateway.store.group_commit import SetWise


@dataclass(frozen=True, slots=True)
class _Recording:
    """A verified receipt, the status move it makes, and the status it was checked against."""

    receipt: receipt_rows.StoredReceipt
    move: status_moves.Move
    seen_status: Status


def record_receipts(conn: Connection, items: Sequence[_Recording]) -> list[tuple[bool, Status]]:
    """Store verified receipts and move their disclosures; (fresh, status now) for each.

    A replayed receipt id changes nothing; a move the status machine refuses (a receipt racing
    another, or a deadline) leaves the status as it is.
    """
    fresh = receipt_rows.record_many(conn, [item.receipt for item in items])
    moves = [item.move for item, is_fresh in zip(items, fresh, strict=True) if is_fresh]
    results = iter(status_moves.apply(conn, moves))
    answers: list[tuple[bool, Status]] = []
    for item, is_fresh in zip(items, fresh, strict=True):
        if not is_fresh:
            answers.append((False, item.seen_status))
            continue
        result = next(results)
        answers.append((True, item.move.to if result.moved else result.before))
    return answers


class ReceiptLedger:
    """The store side of receipt intake."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def disclosure(self, message_id: str) -> Disclosure | None:
        """The disclosure a receipt names, if there is one."""
        async with self._store.read() as conn:
            return await disclosures.get(conn, message_id)

    async def record(
        self, receipt: receipt_rows.StoredReceipt, move: status_moves.Move, seen: Status
    ) -> tuple[bool, Status]:
        """Record it with its move, written set-wise with receipts arriving at the same time:
        (fresh, status now)."""
        return await self._store.write(SetWise(record_receipts, _Recording(receipt, move, seen)))

    async def refused(
        self, *, message_id: str, partner: str | None, code: str, via: str, at: datetime
    ) -> None:
        """Audit a refused receipt its partner signed (names and codes only)."""
        targets = {"disclosure": message_id}
        if partner:
            targets["partner"] = partner

        async def work(conn: AsyncConnection) -> None:
            details = {"code": code, "via": via}
            await audit_log.append(
                conn, SYSTEM, "receipt.refused", at=at, targets=targets, details=details
            )
            await audit_log.seal(conn, at=at)

        await self._store.write(work)
