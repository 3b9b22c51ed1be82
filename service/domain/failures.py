"""Why a payment failed: the stable machine words and the sentence shown to people.

The one place that knows them. A gateway names the code of a decline (the simulator:
per amount, [gateway] decline_codes) and may word its own message; the service stores
this module's sentence for the code when it does not. A decline without a code (the
simulator's decline_amounts) and a gateway callback that says only "failed" get the
generic decline.
"""

from __future__ import annotations

FAILURE_MESSAGES: dict[str, str] = {
    "card_declined": "The card was declined by its issuer.",
    "insufficient_funds": "The card has insufficient funds for this payment.",
    "expired_card": "The card has expired.",
    "incorrect_cvc": "The card's security code is incorrect.",
    "lost_or_stolen_card": "The card was reported lost or stolen.",
    "processing_error": "The payment could not be processed; trying again may succeed.",
    # The buyer did not pass, or never took, the card issuer's authentication (3-D Secure).
    "authentication_required": "The buyer did not complete the card's authentication.",
    # The gateway refused the charge request itself (an unknown or unusable payment method):
    # nothing was taken, and another payment method may be tried.
    "invalid_request": "The gateway refused the payment method given for this payment.",
    # A refund the gateway refused, for a reason of its own.
    "refund_failed": "The payment gateway could not refund the payment.",
}

# The generic decline (card networks' "do not honour"): what a decline without a
# reason gets. A callback's {"status": "failed"} gets it too, not processing_error:
# the gateway decided, it did not fail to decide.
GENERIC_DECLINE = "card_declined"


def failure_message(code: str) -> str:
    """The sentence for people that goes with a failure code."""
    return FAILURE_MESSAGES.get(code, "The payment gateway declined the payment.")
