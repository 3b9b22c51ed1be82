"""What a gateway decision makes of a PROCESSING payment (create, callbacks' twin, reconciler)."""

from __future__ import annotations

from service.domain.rules import PaymentStatus
from service.gateway import GatewayDecision

SETTLED_STATUS = {
    GatewayDecision.APPROVED: PaymentStatus.COMPLETED,
    GatewayDecision.DECLINED: PaymentStatus.FAILED,
}
