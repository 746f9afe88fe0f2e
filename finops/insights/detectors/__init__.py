"""One detector per failure pattern (DESIGN "Failure patterns"), each in its own module
named for the pattern. A detector reads the window's ``Context`` (vectorised frames, no
loop over samples or jobs) and returns ``Draft`` findings; ``finops.insights.services``
caps their waste at the scope's ledger cost and stores them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from finops.insights.context import Context

CENT = Decimal("0.01")


def dec(value: Any) -> Decimal:
    """A float (numpy's too) as a Decimal, exactly as printed."""
    return Decimal(repr(float(value)))


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def per_second(cost: Any, seconds: float) -> str | None:
    """A cost per usable second as a decimal string (6 places), None without output."""
    if not seconds:
        return None
    return str((Decimal(str(cost)) / Decimal(repr(float(seconds)))).quantize(Decimal("0.000001")))


@dataclass
class Draft:
    pattern: str
    scope_kind: str
    scope_key: str
    team_id: int | None
    evidence: dict[str, Any]
    waste: Decimal  # in the window; capped at ``scope_cost`` when stored
    scope_cost: Decimal  # the scope's ledger cost in the window
    recommendation: str
    action: dict[str, Any]
    thresholds: dict[str, float]
    severity: str = "warning"
    extra: dict[str, Any] = field(default_factory=dict)
    dedup_suffix: str = ""  # two findings of one pattern on one scope (idle-held cases)

    @property
    def dedup_key(self) -> str:
        key = f"{self.pattern}:{self.scope_kind}:{self.scope_key}"
        return f"{key}:{self.dedup_suffix}" if self.dedup_suffix else key


def severity_of(signal: float, threshold: float, *, higher_is_worse: bool = True) -> str:
    """Twice past its threshold is critical; past it, a warning."""
    ratio = signal / threshold if higher_is_worse else threshold / max(signal, 1e-9)
    return "critical" if ratio >= 2 else "warning"


def fix_action(
    *, kind: str, scope_cost: Decimal, saved: Decimal, usable_seconds: float,
    assumptions: list[str], **details: Any,
) -> dict[str, Any]:  # fmt: skip
    """The structured fix: what to do, the cost per usable second now and after it."""
    return {
        "kind": kind,
        "current_cost": str(money(scope_cost)),
        "projected_cost": str(money(max(scope_cost - saved, Decimal(0)))),
        "current_cost_per_usable_second": per_second(scope_cost, usable_seconds),
        "projected_cost_per_usable_second": per_second(
            max(scope_cost - saved, Decimal(0)), usable_seconds
        ),
        "usable_seconds": round(float(usable_seconds), 3),
        "assumptions": assumptions,
        **details,
    }


Detector = Callable[[Context], list[Draft]]


def all_detectors() -> dict[str, Detector]:
    from finops.insights.detectors import (
        idle_capacity,
        idle_held,
        io_starvation,
        memory_underinvestment,
        model_cost_regression,
        placement,
        power_capping,
        premature_horizontal_scaling,
        regeneration_waste,
        thermal_throttling,
    )

    return {
        "memory_underinvestment": memory_underinvestment.detect,
        "premature_horizontal_scaling": premature_horizontal_scaling.detect,
        "thermal_throttling": thermal_throttling.detect,
        "power_capping": power_capping.detect,
        "io_starvation": io_starvation.detect,
        "regeneration_waste": regeneration_waste.detect,
        "idle_capacity": idle_capacity.detect,
        "model_cost_regression": model_cost_regression.detect,
        "placement": placement.detect,
        "idle_held": idle_held.detect,
    }
