"""Wire the delivery engine to a gateway: the channels it may use, and the worker role's life."""

from __future__ import annotations

import os

from adapters.channel import Channel
from adapters.mesh import MeshChannel
from adapters.mesh_config import load_mesh_config
from adapters.webhook import WebhookChannel
from gateway.delivery.service import DeliveryOptions, DeliveryService
from gateway.service import Gateway


def build_channels(gateway: Gateway) -> dict[str, Channel]:
    """The webhook channel always; NHS MESH when GATEWAY_MESH_MAILBOX is configured."""
    settings = gateway.settings
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel(
            connect_timeout=settings.webhook_connect_timeout,
            total_timeout=settings.webhook_total_timeout,
            allow_insecure_loopback=settings.allow_insecure_loopback,
        )
    }
    if os.environ.get("GATEWAY_MESH_MAILBOX"):
        channels["mesh"] = MeshChannel(load_mesh_config())
    return channels


class DeliveryWorker:
    """The worker role: the delivery service plus the channels it owns."""

    def __init__(self, gateway: Gateway, options: DeliveryOptions | None = None) -> None:
        self.channels = build_channels(gateway)
        self.service = DeliveryService(
            settings=gateway.settings,
            store=gateway.store,
            policy=gateway.policy,
            intake=gateway.receipts,
            metrics=gateway.metrics,
            channels=self.channels,
            clock=gateway.clock,
            options=options,
        )
        gateway.broker_ready = self.service.broker_ready
        gateway.pipeline.on_accepted = self.service.notify

    async def start(self) -> None:
        """Start relaying and delivering."""
        await self.service.start()

    async def stop(self, grace: float) -> None:
        """Finish in-flight deliveries, then close the channels' connections."""
        try:
            await self.service.stop(grace)
        finally:
            for channel in self.channels.values():
                await channel.close()
