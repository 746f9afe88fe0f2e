"""How money and quantities are shown: every figure in the API, invoices and exports is
rounded half up (0.625 shows as 0.63), as the ledger rounds its own amounts."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
TEN_THOUSANDTH = Decimal("0.0001")


def money_str(value: Decimal) -> str:
    """An amount in cents, rounded half up."""
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def quantity_str(value: Decimal) -> str:
    """A quantity (GPU-hours, GB-months, kWh) to four places, rounded half up."""
    return str(value.quantize(TEN_THOUSANDTH, rounding=ROUND_HALF_UP))
