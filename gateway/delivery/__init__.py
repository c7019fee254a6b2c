"""The delivery engine: outbox relay, RabbitMQ consumers or the embedded queue, deadlines, MESH.

`DeliveryService` is what a gateway process starts; the rest is exposed for tests and tools.
"""

from gateway.delivery.engine import DeliveryOptions, DeliveryService

__all__ = ["DeliveryOptions", "DeliveryService"]
