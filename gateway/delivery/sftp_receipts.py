"""Receipts SFTP partners leave in their outbound directories, taken by the receipt intake.

The poller (`adapters.sftp.SftpReceiptPoller`) reads each `<disclosure-id>.receipt.jwt`; this
handler hands it to the same `ReceiptIntake` as `POST /v1/receipts`, and answers what to do
with the file: `accepted` (verified and recorded, or a replay of one that was: archived),
`refused` (malformed, unknown, forged or mismatched: quarantined; audited by the intake when
its signature verifies, otherwise only counted), `retry` (our side failed: left for next time).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import structlog

from agreements.model import channel_settings
from agreements.vocabulary import ChannelType
from gateway.application.inbound import ReceiptFile, ReceiptVerdict
from gateway.application.receipt_intake import ReceiptIntake, claimed_message_id
from gateway.errors import NotFoundError
from gateway.metrics import Metrics
from gateway.policy_cache import PolicyCache
from gateway.receipts import ReceiptError

log = structlog.get_logger("gateway.delivery.sftp")


class SftpReceipts:
    """The SFTP receipt poller's `ReceiptFileHandler`: takes files, names the partners."""

    def __init__(self, *, policy: PolicyCache, intake: ReceiptIntake, metrics: Metrics) -> None:
        self.policy, self.intake, self.metrics = policy, intake, metrics

    def partners(self) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Every SFTP partner in force, with its channel settings."""
        for partner in self.policy.snapshot.partners.values():
            if partner.channel.type == ChannelType.SFTP:
                yield partner.id, channel_settings(partner)

    async def __call__(self, file: ReceiptFile) -> ReceiptVerdict:
        """Take one receipt file; raising is never needed: faults become `retry`."""
        verdict = await self._take(file)
        self.metrics.channel_receipts.labels("sftp", verdict).inc()
        return verdict

    async def _take(self, file: ReceiptFile) -> ReceiptVerdict:
        context = {"partner": file.partner_id, "disclosure_id": file.message_id}
        try:
            if claimed_message_id(file.body) != file.message_id:
                log.warning("sftp_receipt_name_mismatch", **context)
                return "refused"
            await self.intake.accept(file.body, via="sftp")
        except (ReceiptError, NotFoundError) as exc:  # refused (and audited) by the intake
            log.warning("sftp_receipt_refused", code=exc.code, **context)
            return "refused"
        except Exception as exc:  # the database, not the receipt: look again next poll
            log.error("sftp_receipt_retry", error_type=type(exc).__name__, **context)
            return "retry"
        return "accepted"
