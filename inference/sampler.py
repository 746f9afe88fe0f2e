"""Flow-matching Euler sampling with shift, classifier-free guidance and latent caching.

Flow matching (rectified flow, as in Wan 2.1): x_sigma = (1 - sigma) x_0 + sigma * noise, the
model predicts v = noise - x_0, and sampling integrates dx/dsigma = v from sigma = 1 to 0.
The schedule is shifted, sigma' = s sigma / (1 + (s - 1) sigma), which spends more steps at
high noise for large token counts.

Caches skip the DiT block stack on some steps and reuse the residual it added last time:

* ``teacache:T`` (TeaCache, Liu et al. 2024): accumulate the relative L1 change of the first
  block's modulated input between steps; while the sum stays under T, reuse; on compute,
  reset the sum.
* ``fbcache:T`` (first-block cache): always run the first block; when its residual changed
  by less than T (relative L1) since the last step, reuse the rest of the stack's residual.

The first and last steps are always computed, and at most ``max_skips`` steps in a row are
skipped. Each CFG branch keeps its own cache state and hit count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import torch

from inference.model import Block, VideoDiT


def sigma_schedule(steps: int, shift: float) -> torch.Tensor:
    """steps + 1 noise levels from 1 to 0 (float64), shifted."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if shift <= 0:
        raise ValueError(f"shift must be positive, got {shift}")
    sigma = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    return shift * sigma / (1 + (shift - 1) * sigma)


def euler_integrate(
    x: torch.Tensor,
    sigmas: torch.Tensor,
    velocity: Callable[[torch.Tensor, float, int], torch.Tensor],
    on_step: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Integrate dx/dsigma = velocity(x, sigma, step) along ``sigmas`` with Euler steps."""
    for i in range(len(sigmas) - 1):
        sigma, following = float(sigmas[i]), float(sigmas[i + 1])
        x = x + (following - sigma) * velocity(x, sigma, i)
        if on_step:
            on_step(i)
    return x


@dataclass(frozen=True)
class CacheConfig:
    kind: str = "none"  # none, teacache, fbcache
    threshold: float = 0.0
    max_skips: int = 3

    @classmethod
    def parse(cls, text: str | None, max_skips: int = 3) -> CacheConfig:
        """'none', 'teacache:0.08' or 'fbcache:0.05'."""
        if not text or text == "none":
            return cls()
        kind, _, value = text.partition(":")
        if kind not in {"teacache", "fbcache"}:
            raise ValueError(f"--cache: kind must be teacache or fbcache, not {kind!r}")
        try:
            threshold = float(value)
        except ValueError:
            raise ValueError(f"--cache: threshold must be a number, as in {kind}:0.08") from None
        if not 0 < threshold < 10:
            raise ValueError(f"--cache: threshold must be in (0, 10), got {threshold}")
        return cls(kind, threshold, max_skips)

    @property
    def label(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.threshold:g}"


@dataclass
class BranchCache:
    accumulated: float = 0.0
    previous: torch.Tensor | None = None
    residual: torch.Tensor | None = None
    skips_in_row: int = 0
    hits: int = 0
    calls: int = 0
    computed: list[bool] = field(default_factory=list)  # per step: ran the stack


def _rel_l1(now: torch.Tensor, before: torch.Tensor) -> float:
    """Largest per-sample relative L1 change (a batched CFG step skips only if all agree)."""
    dims = tuple(range(1, now.ndim))
    change = (now - before).abs().mean(dim=dims) / before.abs().mean(dim=dims).clamp_min(1e-12)
    return float(change.max())


@dataclass
class SampleStats:
    step_times_s: list[float] = field(default_factory=list)
    forwards: int = 0  # denoiser forwards requested (per branch)
    stack_runs: int = 0  # forwards that ran the whole block stack
    blocks_run: int = 0
    blocks_total: int = 0
    branches: dict[str, BranchCache] = field(default_factory=dict)

    def hit_rates(self) -> dict[str, float]:
        return {name: (b.hits / b.calls if b.calls else 0.0) for name, b in self.branches.items()}


class Denoiser:
    """The DiT with a cache per CFG branch."""

    def __init__(self, dit: VideoDiT, cache: CacheConfig, steps: int, stats: SampleStats) -> None:
        self.dit, self.cache, self.steps, self.stats = dit, cache, steps, stats

    def __call__(
        self, x: torch.Tensor, sigma: float, step: int, context: torch.Tensor, branches: list[str]
    ) -> torch.Tensor:
        dit, cache, stats = self.dit, self.cache, self.stats
        t = torch.full((x.shape[0],), sigma * 1000.0, device=x.device)
        p = dit.prepare(x, t, context)
        key = "+".join(branches)
        state = stats.branches.setdefault(key, BranchCache())
        state.calls += 1
        layers = len(dit.blocks)
        stats.forwards += len(branches)
        stats.blocks_total += layers * len(branches)
        forced = step == 0 or step == self.steps - 1
        can_skip = (
            not forced and state.residual is not None and state.skips_in_row < cache.max_skips
        )
        if cache.kind == "teacache":
            first_block = cast(Block, dit.blocks[0])
            signal = first_block.modulate(p.tokens, p.e_blocks)[-1]
            if state.previous is not None:
                state.accumulated += _rel_l1(signal, state.previous)
            state.previous = signal
            start, h = p.tokens, p.tokens
            skip = can_skip and state.accumulated < cache.threshold
        elif cache.kind == "fbcache":
            start = dit.run_blocks(p, p.tokens, 0, 1)
            stats.blocks_run += len(branches)
            first_residual = start - p.tokens
            change = (
                _rel_l1(first_residual, state.previous)
                if state.previous is not None
                else float("inf")
            )
            state.previous = first_residual
            h = start
            skip = can_skip and change < cache.threshold
        else:
            start, h, skip = p.tokens, p.tokens, False
        if skip and state.residual is not None:
            h = start + state.residual
            state.hits += 1
            state.skips_in_row += 1
            state.computed.append(False)
        else:
            first = 1 if cache.kind == "fbcache" else 0
            h = dit.run_blocks(p, start, first)
            stats.blocks_run += (layers - first) * len(branches)
            stats.stack_runs += len(branches)
            state.computed.append(True)
            if cache.kind != "none":
                state.residual = h - start
                state.accumulated = 0.0
                state.skips_in_row = 0
        return dit.finish(p, h)


def sample(
    dit: VideoDiT,
    noise: torch.Tensor,
    *,
    context: torch.Tensor,
    uncond_context: torch.Tensor | None,
    steps: int,
    shift: float,
    guidance: float,
    cfg: str = "batched",
    cache: CacheConfig | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[torch.Tensor, SampleStats]:
    """Latents from noise: Euler over the shifted schedule, CFG ``batched`` (one forward of
    batch 2) or ``sequential`` (two forwards), with the cache given."""
    if cfg not in {"batched", "sequential"}:
        raise ValueError(f"cfg must be batched or sequential, not {cfg!r}")
    stats = SampleStats()
    denoise = Denoiser(dit, cache or CacheConfig(), steps, stats)
    guided = uncond_context is not None and guidance != 1.0

    def velocity(x: torch.Tensor, sigma: float, step: int) -> torch.Tensor:
        started = time.perf_counter()
        if not guided or uncond_context is None:
            v = denoise(x, sigma, step, context, ["cond"])
        elif cfg == "batched":
            contexts = torch.cat([context, uncond_context])
            both = denoise(torch.cat([x, x]), sigma, step, contexts, ["cond", "uncond"])
            v_cond, v_uncond = both.chunk(2)
            v = v_uncond + guidance * (v_cond - v_uncond)
        else:
            v_cond = denoise(x, sigma, step, context, ["cond"])
            v_uncond = denoise(x, sigma, step, uncond_context, ["uncond"])
            v = v_uncond + guidance * (v_cond - v_uncond)
        stats.step_times_s.append(time.perf_counter() - started)
        return v

    with torch.no_grad():
        latents = euler_integrate(noise, sigma_schedule(steps, shift), velocity, on_step)
    return latents, stats
