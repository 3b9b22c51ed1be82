"""The outbox relay: order webhooks delivered at least once, in order, signed."""

from service.outbox.relay import OutboxRelay, RelayHandle, start_relay

__all__ = ["OutboxRelay", "RelayHandle", "start_relay"]
