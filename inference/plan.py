"""`plan`: what a clip of a pipeline costs on each catalog GPU, before owning one.

For every GPU in the catalog and every setup asked for (1, 2, 4 or 8 GPUs, PCIe or NVLink,
offload modes): predicted peak memory per GPU over the pipeline's phases, whether it fits,
predicted time per clip, speedup and efficiency over one GPU (``inference.pipeline``), and
cost per usable second at the GPU's price, where usable clips are 1 - regen_rate of those
rendered.
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
from inference.pipeline import Phase, Pipeline, Setup, estimate_scaled, gpu_entries
from inference.shapes import Shape, attention_fraction, flops_per_forward, token_count

DEFAULT_FPS = 16.0  # Wan 2.1 renders 16 frames per second


@dataclass(frozen=True)
class PlanRow:
    gpu: str
    gpus: int
    interconnect: str
    vram_bytes: int
    peak_bytes_per_gpu: int
    fits: bool
    seconds_per_clip: float | None
    speedup: float
    efficiency: float
    price_per_gpu_hour: Decimal | None
    price_source: str
    cost_per_clip: Decimal | None
    cost_per_usable_second: Decimal | None
    assumptions: tuple[str, ...]
    phases: tuple[Phase, ...]

    def as_dict(self) -> dict[str, Any]:
        """The row as ``plan --json`` prints it (docs/inference.md): money as decimal
        strings, bytes as integers, seconds to 0.1 s."""
        return {
            "gpu": self.gpu,
            "gpus": self.gpus,
            "interconnect": self.interconnect,
            "vram_bytes": self.vram_bytes,
            "peak_bytes_per_gpu": self.peak_bytes_per_gpu,
            "fits": self.fits,
            "seconds_per_clip": round(self.seconds_per_clip, 1) if self.seconds_per_clip else None,
            "speedup": round(self.speedup, 3),
            "efficiency": round(self.efficiency, 3),
            "price_per_gpu_hour": _text(self.price_per_gpu_hour),
            "price_source": self.price_source,
            "cost_per_clip": _text(self.cost_per_clip),
            "cost_per_usable_second": _text(self.cost_per_usable_second),
            "phases": [{"phase": p.name, "resident_bytes": p.resident_bytes,
                        "seconds": round(p.seconds, 1)} for p in self.phases],
            "assumptions": list(self.assumptions),
        }  # fmt: skip


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Workload:
    pipeline: Pipeline
    height: int
    width: int
    frames: int
    steps: int = 50
    cfg_forwards: int | None = None  # None: the pipeline's (two with guidance)
    regen_rate: float = 0.0
    fps: float = DEFAULT_FPS

    def __post_init__(self) -> None:
        if not 0 <= self.regen_rate < 1:
            raise ValueError(f"--regen-rate must be in [0, 1), got {self.regen_rate}")
        if self.steps < 1:
            raise ValueError(f"--steps must be at least 1, got {self.steps}")
        if self.fps <= 0:
            raise ValueError(f"--fps must be above 0, got {self.fps}")
        token_count(self.frames, self.height, self.width)  # names a bad clip size

    @property
    def shape(self) -> Shape:
        return self.pipeline.shape

    @property
    def tokens(self) -> int:
        return token_count(self.frames, self.height, self.width)

    @property
    def forwards_per_step(self) -> int:
        return self.pipeline.cfg_forwards if self.cfg_forwards is None else self.cfg_forwards

    @property
    def flops_per_clip(self) -> float:
        return self.steps * self.forwards_per_step * flops_per_forward(self.shape, self.tokens)

    @property
    def usable_seconds_per_clip(self) -> float:
        return self.frames / self.fps * (1 - self.regen_rate)


def plan(
    workload: Workload,
    prices: dict[str, tuple[Decimal, str]],
    *,
    setups: list[Setup] | None = None,
    gpu: str | None = None,
) -> list[PlanRow]:
    """One row per catalog GPU (or ``gpu``) and setup (GPU count, interconnect, offload),
    cheapest usable second first; rows that do not fit last."""
    rows = []
    for entry in gpu_entries(gpu):
        for setup in setups or [Setup()]:
            est = estimate_scaled(
                workload.pipeline, entry, height=workload.height, width=workload.width,
                frames=workload.frames, steps=workload.steps, setup=setup,
                cfg_forwards=workload.cfg_forwards,
            )  # fmt: skip
            seconds = est.seconds if entry.get("bf16_dense_tflops") else None
            price, source = prices.get(entry["name"], (None, "no price"))
            fits = est.peak_bytes_per_gpu <= entry["vram_bytes"]
            cost = (
                (Decimal(repr(seconds)) / 3600 * price * setup.gpus).quantize(Decimal("0.0001"))
                if seconds is not None and price is not None
                else None
            )
            per_second = (
                (cost / Decimal(repr(workload.usable_seconds_per_clip))).quantize(
                    Decimal("0.000001")
                )
                if cost is not None and fits
                else None
            )
            notes = list(est.assumptions)
            if workload.regen_rate:
                notes.append(f"{workload.regen_rate:.0%} of clips regenerated")
            rows.append(PlanRow(
                entry["name"], setup.gpus, est.interconnect, entry["vram_bytes"],
                est.peak_bytes_per_gpu, fits, seconds, est.speedup, est.efficiency, price,
                source, cost, per_second, tuple(notes), tuple(est.phases),
            ))  # fmt: skip
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
