"""The analytic model behind `plan`, against the torch modules and public figures."""

from __future__ import annotations

import pytest
import torch

from inference.model import VideoDiT
from inference.shapes import (
    PRESETS,
    attention_fraction,
    flops_per_forward,
    memory_estimate,
    naive_attention_bytes,
    param_count,
    shape_get,
    token_count,
)


@pytest.mark.parametrize(
    "name", ["tiny-cpu", "wan-1.3b-shape", "wan-14b-shape", "wan-1.3b-shape-L2", "wan-14b-shape-L1"]
)
def test_parameter_count_matches_the_built_model(name):
    shape = shape_get(name)
    with torch.device("meta"):
        model = VideoDiT(shape)
    assert sum(p.numel() for p in model.parameters()) == param_count(shape)


@pytest.mark.parametrize(
    ("name", "nominal"),
    [("wan-1.3b-shape", 1.3e9), ("wan-14b-shape", 14e9), ("hunyuan-shape", 13e9)],
)
def test_shape_presets_have_their_public_sizes(name, nominal):
    # Wan 2.1 1.3B and 14B, HunyuanVideo 13B: within 10% (embeddings and heads differ a little).
    assert param_count(PRESETS[name]) == pytest.approx(nominal, rel=0.10)


def test_token_counts():
    # Wan 2.1 at 480x832, 81 frames: 21 x 60 x 104 latents, patch (1,2,2) -> 32,760 tokens.
    assert token_count(81, 480, 832) == 32_760
    assert token_count(17, 64, 64) == 5 * 4 * 4  # tiny-cpu
    assert token_count(129, 720, 1280) == 33 * 45 * 80  # HunyuanVideo 720p


@pytest.mark.parametrize(
    ("frames", "height", "width", "message"),
    [(80, 480, 832, "frames must be 4k"), (81, 470, 832, "height"), (81, 480, 0, "width")],
)
def test_bad_clip_sizes_are_named(frames, height, width, message):
    with pytest.raises(ValueError, match=message):
        token_count(frames, height, width)


def test_truncated_and_unknown_presets():
    shape = shape_get("wan-14b-shape-L2")
    assert (shape.layers, shape.full_layers, shape.dim) == (2, 40, 5120)
    with pytest.raises(ValueError, match=r"layers must be 1\.\.30"):
        shape_get("wan-1.3b-shape-L31")
    with pytest.raises(ValueError, match="cannot be truncated"):
        shape_get("tiny-cpu-L2")
    with pytest.raises(ValueError, match="unknown preset"):
        shape_get("wan-7b")


def test_naive_attention_is_heads_times_tokens_squared_times_two_bytes():
    shape = PRESETS["wan-1.3b-shape"]
    assert naive_attention_bytes(shape, 32_760) == 12 * 32_760**2 * 2  # 25.8 GB per layer
    math = memory_estimate(shape, 32_760, attention="math")
    assert math.attention_bytes == 2 * naive_attention_bytes(shape, 32_760)  # scores + probs
    assert memory_estimate(shape, 32_760, attention="flash").attention_bytes == 0


def test_step_time_grows_as_tokens_squared_once_attention_dominates():
    shape = PRESETS["wan-1.3b-shape"]
    short = flops_per_forward(shape, 4_000) / flops_per_forward(shape, 2_000)
    long = flops_per_forward(shape, 400_000) / flops_per_forward(shape, 200_000)
    assert 2.0 < short < 2.5  # linear layers dominate: about linear
    assert long == pytest.approx(4.0, rel=0.05)  # attention dominates: quadratic
    assert attention_fraction(shape, 32_760) > 0.5  # already so at Wan's 480p


def test_hunyuan_activation_memory_grows_as_the_public_figures_do():
    # HunyuanVideo, 129 frames: about 45 GB at 544x960 and 60 GB at 720x1280 with its 13B
    # weights in bf16 (26 GB) resident. What grows is activation memory: the public figures
    # imply (60 - 26) / (45 - 26) = 1.79, tiled attention makes it linear in tokens.
    shape = PRESETS["hunyuan-shape"]
    low = memory_estimate(shape, token_count(129, 544, 960))
    high = memory_estimate(shape, token_count(129, 720, 1280))
    public = (60e9 - 26e9) / (45e9 - 26e9)
    ratio = (high.peak_bytes - high.weights_bytes) / (low.peak_bytes - low.weights_bytes)
    assert ratio == pytest.approx(public, rel=0.05)
    assert high.weights_bytes == pytest.approx(26e9, rel=0.10)
