"""Prometheus metrics, one registry per app so tests and processes never share state.

Under gunicorn (PROMETHEUS_MULTIPROC_DIR set) each process writes its values to that folder
and a scrape of any process sums them all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

_STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1)


@dataclass
class Metrics:
    """The gateway's metrics; labels carry codes and ids, never personal values."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "gatehouse_http_requests", "HTTP requests", ["endpoint", "method", "status"], registry=r
        )
        self.disclosures = Counter(
            "gatehouse_disclosures", "Disclosure decisions", ["outcome", "reason"], registry=r
        )
        self.stage_seconds = Histogram(
            "gatehouse_pipeline_stage_seconds",
            "Time spent in each pipeline stage",
            ["stage"],
            buckets=_STAGE_BUCKETS,
            registry=r,
        )
        self.outbox_depth = Gauge(
            "gatehouse_outbox_depth",
            "Outbox rows not yet published",
            registry=r,
            multiprocess_mode="mostrecent",  # every process reads the same table
        )
        self.deliveries = Counter(
            "gatehouse_deliveries", "Delivery attempts", ["partner", "outcome"], registry=r
        )
        self.receipts = Counter("gatehouse_receipts", "Receipts processed", ["outcome"], registry=r)
        self.receipts_unauthenticated = Counter(
            "gatehouse_receipts_refused_unauthenticated",
            "Receipts refused before any registered partner key verified them (never stored)",
            ["reason"],
            registry=r,
        )
        self.channel_results = Counter(
            "gatehouse_channel_results",
            "Delivery attempts by channel, outcome and reason code",
            ["channel", "outcome", "reason"],
            registry=r,
        )
        self.channel_receipts = Counter(
            "gatehouse_channel_receipt_files",
            "Receipts collected from a channel (SFTP outbound directories, the receipts mailbox)"
            ", by verdict",
            ["channel", "verdict"],
            registry=r,
        )
        self.mailbox_poll_failures = Counter(
            "gatehouse_mailbox_poll_failures",
            "Polls of the receipts mailbox that could not read it, by reason code",
            ["reason"],
            registry=r,
        )
        self.mail_quarantined = Counter(
            "gatehouse_mail_quarantined",
            "Mails moved from the receipts mailbox to its quarantine folder, by reason code",
            ["reason"],
            registry=r,
        )
        self.delivery_seconds = Histogram(
            "gatehouse_submit_to_receipt_seconds",
            "Time from acceptance to verified receipt",
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric (of every process under gunicorn)."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)
