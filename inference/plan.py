"""`plan`: what a clip of a model shape costs on each catalog GPU, before owning one.

For every GPU in the catalog: predicted peak memory (weights, the widest phase of a DiT
block, the text context; bf16), whether it fits, predicted time per clip (analytic FLOPs
over the GPU's dense BF16 peak times an assumed model FLOPs utilisation), and cost per
usable second at the GPU's price, where usable clips are 1 - regen_rate of those rendered.
No torch and no Django: prices are handed in (FrameOps passes the rates it has loaded;
the command line reads a ``--prices`` file that ``manage.py planner_prices`` writes, and
``--price MODEL=USD_PER_HOUR``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from collectors.catalog import catalog_entries
from inference.shapes import (
    Shape,
    attention_fraction,
    flops_per_forward,
    memory_estimate,
    token_count,
)

# Model FLOPs utilisation assumed for time predictions: public Wan 2.1 timings on H100
# imply 35-40% (docs/inference.md shows the arithmetic).
DEFAULT_MFU = 0.37
DEFAULT_FPS = 16.0  # Wan 2.1 renders 16 frames per second


@dataclass(frozen=True)
class PlanRow:
    gpu: str
    vram_bytes: int
    peak_bytes: int
    fits: bool
    seconds_per_clip: float | None
    price_per_gpu_hour: Decimal | None
    price_source: str
    cost_per_clip: Decimal | None
    cost_per_usable_second: Decimal | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "vram_gib": round(self.vram_bytes / 2**30, 1),
            "peak_gib": round(self.peak_bytes / 2**30, 2),
            "fits": self.fits,
            "seconds_per_clip": round(self.seconds_per_clip, 1) if self.seconds_per_clip else None,
            "price_per_gpu_hour": str(self.price_per_gpu_hour) if self.price_per_gpu_hour else None,
            "price_source": self.price_source,
            "cost_per_clip": str(self.cost_per_clip) if self.cost_per_clip is not None else None,
            "cost_per_usable_second": str(self.cost_per_usable_second)
            if self.cost_per_usable_second is not None
            else None,
        }


@dataclass(frozen=True)
class Workload:
    shape: Shape
    height: int
    width: int
    frames: int
    steps: int = 50
    cfg_forwards: int = 2  # classifier-free guidance: two forwards a step
    regen_rate: float = 0.0
    fps: float = DEFAULT_FPS
    mfu: float = DEFAULT_MFU
    dtype_bytes: int = 2

    def __post_init__(self) -> None:
        if not 0 <= self.regen_rate < 1:
            raise ValueError(f"--regen-rate must be in [0, 1), got {self.regen_rate}")
        if not 0 < self.mfu <= 1:
            raise ValueError(f"--mfu must be in (0, 1], got {self.mfu}")
        if self.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {self.steps}")

    @property
    def tokens(self) -> int:
        return token_count(self.frames, self.height, self.width)

    @property
    def flops_per_clip(self) -> float:
        return self.steps * self.cfg_forwards * flops_per_forward(self.shape, self.tokens)

    @property
    def usable_seconds_per_clip(self) -> float:
        return self.frames / self.fps * (1 - self.regen_rate)


def plan(workload: Workload, prices: dict[str, tuple[Decimal, str]]) -> list[PlanRow]:
    """One row per catalog GPU, cheapest usable second first (GPUs that do not fit last)."""
    peak = memory_estimate(
        workload.shape, workload.tokens, dtype_bytes=workload.dtype_bytes
    ).peak_bytes
    rows = []
    for entry in catalog_entries():
        tflops = entry.get("bf16_dense_tflops")
        seconds = workload.flops_per_clip / (tflops * 1e12 * workload.mfu) if tflops else None
        price, source = prices.get(entry["name"], (None, "no price"))
        fits = peak <= entry["vram_bytes"]
        cost = (
            (Decimal(repr(seconds)) / 3600 * price).quantize(Decimal("0.0001"))
            if seconds is not None and price is not None
            else None
        )
        per_second = (
            (cost / Decimal(repr(workload.usable_seconds_per_clip))).quantize(Decimal("0.000001"))
            if cost is not None and fits
            else None
        )
        rows.append(
            PlanRow(
                entry["name"], entry["vram_bytes"], peak, fits, seconds, price, source, cost,
                per_second,
            )
        )  # fmt: skip
    rows.sort(
        key=lambda r: (not r.fits, r.cost_per_usable_second is None, r.cost_per_usable_second or 0)
    )
    return rows


def prices_load(
    overrides: dict[str, Decimal], *, base: dict[str, tuple[Decimal, str]] | None = None
) -> dict[str, tuple[Decimal, str]]:
    """GPU model -> (price per GPU-hour, where it came from): ``base`` (what the caller read:
    FrameOps hands its loaded prices, ``finops.pricing.selectors.planner_prices``; the CLI a
    ``--prices`` file), then the overrides, which win."""
    prices: dict[str, tuple[Decimal, str]] = dict(base or {})
    known = {e["name"] for e in catalog_entries()}
    for name, price in overrides.items():
        if name not in known:
            raise ValueError(
                f"--price: unknown GPU model {name!r}; known: {', '.join(sorted(known))}"
            )
        if price < 0:
            raise ValueError(f"--price: {name} price must not be negative")
        prices[name] = (price, "--price")
    return prices


def prices_read(path: Path) -> dict[str, tuple[Decimal, str]]:
    """A prices file (``manage.py planner_prices --output FILE``): ``{"GPU model": {"price":
    "2.5", "source": "…"}}``. Raises ValueError naming the entry that is wrong."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--prices {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"--prices {path}: expected an object of GPU model to price")
    out: dict[str, tuple[Decimal, str]] = {}
    for name, entry in raw.items():
        try:
            price = Decimal(str(entry["price"]))
        except (KeyError, TypeError, InvalidOperation):
            raise ValueError(f'--prices {path}: {name!r}: expected {{"price": "USD"}}') from None
        if not price.is_finite() or price < 0:
            raise ValueError(f"--prices {path}: {name!r}: price must be a number >= 0")
        out[name] = (price, str(entry.get("source") or path.name))
    return out


def attention_share(workload: Workload) -> float:
    return attention_fraction(workload.shape, workload.tokens)
