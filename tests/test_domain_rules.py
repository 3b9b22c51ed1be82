"""The business rules of service/domain/rules.py, as pure functions (no database)."""

from __future__ import annotations

import itertools
import math
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from service.domain.errors import (
    InvalidPayment,
    InvalidRefund,
    NotRefundable,
    RefundAmountMismatch,
    TransitionNotAllowed,
)
from service.domain.rules import (
    PaymentStatus,
    could_be_a_payment_amount,
    gateway_outcome_applies,
    payment_amount,
    refund_amount,
    refund_reason,
    refund_refusal,
)

S = PaymentStatus

# --- payment_amount -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (100, Decimal(100)),
        (100.0, Decimal(100)),
        (101, Decimal(101)),
        (89800.0, Decimal(89800)),
        (999_999, Decimal(999_999)),
        (1_000_000, Decimal(1_000_000)),
        (1e6, Decimal(1_000_000)),
    ],
)
def test_payment_amount_accepts_whole_yen_in_range(amount: int | float, expected: Decimal) -> None:
    result = payment_amount(amount)
    assert result == expected
    assert isinstance(result, Decimal)
    assert result == result.to_integral_value()


@pytest.mark.parametrize(
    "amount",
    [
        99,
        99.0,
        99.999,
        0,
        -100,
        100.5,
        100.000001,
        1_000_000.5,
        1_000_001,
        1e6 + 1,
        10**30,
        1e300,
        math.inf,
        -math.inf,
        math.nan,
        True,
        False,
    ],
    ids=repr,
)
def test_payment_amount_refuses_out_of_range_fractional_or_non_numbers(
    amount: int | float,
) -> None:
    with pytest.raises(InvalidPayment):
        payment_amount(amount)


@pytest.mark.parametrize("amount", ["100", None, [100]], ids=repr)
def test_payment_amount_refuses_values_that_are_not_json_numbers(amount: object) -> None:
    with pytest.raises(InvalidPayment):
        payment_amount(amount)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "written", ["99.99999999999999999", "100.0000000000000001", "1000000.000000001"]
)
def test_payment_amount_judges_an_exact_decimal_without_float_rounding(written: str) -> None:
    # The API hands fractional JSON numbers over as exact Decimals; as floats
    # these would all round to whole yen inside the range.
    with pytest.raises(InvalidPayment):
        payment_amount(Decimal(written))


def test_payment_amount_accepts_an_exact_decimal_of_whole_yen() -> None:
    assert payment_amount(Decimal("89800.000")) == Decimal(89800)


@pytest.mark.parametrize("currency", ["USD", "jpy", "", "JPY ", "EUR"])
def test_payment_amount_refuses_any_currency_but_jpy(currency: str) -> None:
    with pytest.raises(InvalidPayment):
        payment_amount(1000, currency)


def test_payment_amount_defaults_to_jpy() -> None:
    assert payment_amount(1000) == payment_amount(1000, "JPY") == Decimal(1000)


@given(st.integers(min_value=100, max_value=1_000_000))
def test_any_integer_in_range_is_accepted_exactly(amount: int) -> None:
    assert payment_amount(amount) == Decimal(amount)
    assert payment_amount(float(amount)) == Decimal(amount)


@given(
    st.floats(min_value=-2e6, max_value=2e6, allow_nan=False, allow_infinity=False).filter(
        lambda x: not x.is_integer()
    )
)
@example(100.5)
@example(999_999.999)
@example(100.00000000000001)
def test_any_float_with_a_fractional_part_is_refused(amount: float) -> None:
    with pytest.raises(InvalidPayment):
        payment_amount(amount)


@given(
    st.one_of(
        st.integers(max_value=99),
        st.integers(min_value=1_000_001),
        st.floats(max_value=math.nextafter(100.0, -math.inf)),
        st.floats(min_value=math.nextafter(1e6, math.inf)),
        st.just(math.nan),
    )
)
def test_any_value_outside_the_range_is_refused(amount: int | float) -> None:
    with pytest.raises(InvalidPayment):
        payment_amount(amount)


# --- refund_reason ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reason",
    ["Order cancelled by customer", "x", "x" * 500, "  padded  ", "日本語の理由", "line\nbreak"],
    ids=["typical", "one-char", "500-chars", "padded", "unicode", "newline"],
)
def test_refund_reason_accepts_non_empty_text_up_to_500_characters(reason: str) -> None:
    assert refund_reason(reason) == reason


@pytest.mark.parametrize(
    "reason",
    ["", " ", "\t\n ", "x" * 501, "a\x00b"],
    ids=["empty", "space", "whitespace", "501-chars", "nul"],
)
def test_refund_reason_refuses_empty_too_long_or_nul(reason: str) -> None:
    with pytest.raises(InvalidRefund):
        refund_reason(reason)


# --- refund_amount ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "expected"),
    [(None, None), (5000, Decimal(5000)), (5000.0, Decimal(5000)), (100.5, Decimal("100.5"))],
)
def test_refund_amount_is_the_exact_requested_amount(
    amount: int | float | None, expected: Decimal | None
) -> None:
    assert refund_amount(amount) == expected


@pytest.mark.parametrize("amount", [math.inf, -math.inf, math.nan], ids=repr)
def test_refund_amount_refuses_non_finite_numbers(amount: float) -> None:
    with pytest.raises(RefundAmountMismatch):
        refund_amount(amount)


@given(st.decimals(allow_nan=False, allow_infinity=False) | st.integers().map(Decimal))
@example(Decimal("1e-20000"))
@example(Decimal("1E+200000"))
@example(Decimal("1000.0"))
def test_a_refund_amount_could_be_a_payment_amount_exactly_when_a_create_takes_it(
    amount: Decimal,
) -> None:
    # Any other amount equals no payment's: the refund need not ask the database.
    try:
        payment_amount(amount)
    except InvalidPayment:
        assert not could_be_a_payment_amount(amount)
    else:
        assert could_be_a_payment_amount(amount)


# --- gateway_outcome_applies -----------------------------------------------------------------

ALL_PAIRS = list(itertools.product(PaymentStatus, PaymentStatus))
SAME = [(current, reported) for current, reported in ALL_PAIRS if current == reported]
# What the gateway has not decided yet (PROCESSING, or PENDING: waiting for the buyer's
# authentication) it may settle, hold for the buyer, or take back to processing.
APPLIES = [
    (S.PROCESSING, S.COMPLETED),
    (S.PROCESSING, S.FAILED),
    (S.PROCESSING, S.PENDING),
    (S.PENDING, S.COMPLETED),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.PROCESSING),
]
# The charge of a refunded payment did complete: the gateway saying so is old news.
WENT_PAST = [(S.REFUNDED, S.COMPLETED)]
REFUSED = [pair for pair in ALL_PAIRS if pair not in SAME + APPLIES + WENT_PAST]


def test_the_pair_tables_cover_every_pair_once() -> None:
    assert len(SAME) + len(APPLIES) + len(WENT_PAST) + len(REFUSED) == len(ALL_PAIRS) == 25


@pytest.mark.parametrize(("current", "reported"), SAME, ids=str)
def test_reporting_the_current_status_is_a_no_op(
    current: PaymentStatus, reported: PaymentStatus
) -> None:
    assert gateway_outcome_applies(current, reported) is False


@pytest.mark.parametrize(("current", "reported"), WENT_PAST, ids=str)
def test_reporting_a_status_the_payment_went_past_is_a_no_op(
    current: PaymentStatus, reported: PaymentStatus
) -> None:
    assert gateway_outcome_applies(current, reported) is False


@pytest.mark.parametrize(("current", "reported"), APPLIES, ids=str)
def test_an_undecided_payment_is_settled_by_the_gateway(
    current: PaymentStatus, reported: PaymentStatus
) -> None:
    assert gateway_outcome_applies(current, reported) is True


@pytest.mark.parametrize(("current", "reported"), REFUSED, ids=str)
def test_every_other_gateway_change_is_not_allowed(
    current: PaymentStatus, reported: PaymentStatus
) -> None:
    with pytest.raises(TransitionNotAllowed) as raised:
        gateway_outcome_applies(current, reported)
    assert raised.value.extra == {
        "current_status": str(current),
        "requested_status": str(reported),
    }


# --- refund_refusal --------------------------------------------------------------------------

AMOUNT = Decimal(5000)


@pytest.mark.parametrize("status", [S.PENDING, S.PROCESSING, S.FAILED, S.REFUNDED], ids=str)
@pytest.mark.parametrize("requested", [None, AMOUNT, Decimal(1)], ids=repr)
def test_refund_of_a_payment_that_is_not_completed_is_not_refundable(
    status: PaymentStatus, requested: Decimal | None
) -> None:
    refusal = refund_refusal(status, AMOUNT, requested)
    assert type(refusal) is NotRefundable
    assert refusal.extra == {"payment_status": str(status)}
    assert ("already refunded" in refusal.detail) is (status is S.REFUNDED)


@pytest.mark.parametrize("requested", [Decimal(4999), Decimal("5000.5"), Decimal(100)], ids=str)
def test_refund_of_another_amount_is_a_mismatch(requested: Decimal) -> None:
    refusal = refund_refusal(S.COMPLETED, AMOUNT, requested)
    assert type(refusal) is RefundAmountMismatch


@pytest.mark.parametrize("requested", [None, AMOUNT, Decimal("5000.0")], ids=repr)
def test_refund_of_a_completed_payment_with_its_amount_refused_only_by_a_race(
    requested: Decimal | None,
) -> None:
    refusal = refund_refusal(S.COMPLETED, AMOUNT, requested)
    assert type(refusal) is NotRefundable
    assert "retry" in refusal.detail
