"""The flow-matching sampler and the latent caches."""

from __future__ import annotations

import pytest
import torch

from inference.model import VideoDiT
from inference.sampler import CacheConfig, euler_integrate, sample, sigma_schedule
from inference.shapes import Shape

SMALL = Shape("test", dim=64, ffn_dim=128, heads=2, layers=3, text_dim=16, text_len=4)


def test_shifted_schedule():
    sigmas = sigma_schedule(4, 3.0)
    assert sigmas[0] == 1.0
    assert sigmas[-1] == 0.0
    # sigma' = s sigma / (1 + (s - 1) sigma) at sigma = 0.5, s = 3: 1.5 / 2 = 0.75
    assert float(sigmas[2]) == pytest.approx(0.75)
    assert torch.all(sigmas[1:] < sigmas[:-1])
    with pytest.raises(ValueError, match="shift"):
        sigma_schedule(4, 0.0)


def test_sampler_integrates_the_exact_flow_to_its_data_point():
    # For data at a single point x0, the true velocity on the path
    # x = (1 - s) x0 + s n is v(x, s) = (x - x0) / s; Euler along it lands on x0.
    x0 = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    noise = torch.tensor([1.0, 0.5, -0.7], dtype=torch.float64)
    end = euler_integrate(noise, sigma_schedule(7, 5.0), lambda x, s, i: (x - x0) / s)
    assert torch.allclose(end, x0, atol=1e-12)


def test_euler_error_halves_when_steps_double():
    # dx/dsigma = x from sigma = 1 to 0: x(0) = x(1) / e. Euler is first order.
    start = torch.tensor([1.0], dtype=torch.float64)
    exact = float(start) / torch.e
    errors = [
        abs(float(euler_integrate(start, sigma_schedule(n, 1.0), lambda x, s, i: x)) - exact)
        for n in (50, 100, 200)
    ]
    assert errors[0] / errors[1] == pytest.approx(2.0, rel=0.05)
    assert errors[1] / errors[2] == pytest.approx(2.0, rel=0.05)
    assert errors[2] < 2e-3


def _run(cache: str, *, steps: int = 12, cfg: str = "batched", max_skips: int = 3):
    torch.manual_seed(0)
    dit = VideoDiT(SMALL).eval()
    context, uncond = torch.randn(2, 1, 4, 16).unbind(0)
    noise = torch.randn(1, 16, 2, 4, 4)
    return sample(
        dit, noise, context=context, uncond_context=uncond, steps=steps, shift=3.0,
        guidance=4.0, cfg=cfg, cache=CacheConfig.parse(cache, max_skips),
    )  # fmt: skip


@pytest.mark.parametrize("cache", ["teacache:5", "fbcache:5"])
def test_cache_always_computes_the_first_and_last_step(cache):
    # A threshold nothing can reach would skip everything; first and last still run and
    # no more than max_skips steps are skipped in a row.
    _, stats = _run(cache, max_skips=4)
    for branch in stats.branches.values():
        assert branch.computed[0] and branch.computed[-1]
        assert not all(branch.computed)
        run = longest = 0
        for computed in branch.computed:
            run = 0 if computed else run + 1
            longest = max(longest, run)
        assert longest == 4


def test_sequential_cfg_keeps_a_cache_per_branch_and_matches_batched():
    batched, _ = _run("none")
    sequential, stats = _run("none", cfg="sequential")
    assert torch.allclose(batched, sequential, atol=1e-4)
    _, stats = _run("teacache:5", cfg="sequential")
    assert set(stats.hit_rates()) == {"cond", "uncond"}
    assert all(rate > 0 for rate in stats.hit_rates().values())


def test_no_cache_runs_every_forward():
    _, stats = _run("none")
    assert stats.stack_runs == stats.forwards == 24
    assert stats.blocks_run == stats.blocks_total


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("teacache", "number"),
        ("lru:0.1", "kind"),
        ("teacache:-1", "threshold"),
        ("fbcache:x", "number"),
    ],
)
def test_bad_cache_settings_are_named(text, message):
    with pytest.raises(ValueError, match=message):
        CacheConfig.parse(text)
