"""Model shapes and the analytic model behind `plan`: tokens, parameters, FLOPs, memory.

Pure Python (no torch), so the planner runs anywhere. Every count here is checked in the
tests against the torch modules in `inference.model`, and the public figures it is
validated against are cited in docs/inference.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

# Compression of the causal video autoencoder: 1 + (frames - 1) / 4 latent frames, 1/8 of
# each spatial side (Wan 2.1 and HunyuanVideo both use 4x8x8).
VAE_STRIDE = (4, 8, 8)
PATCH = (1, 2, 2)
FREQ_DIM = 256  # sinusoidal timestep features
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass(frozen=True)
class Shape:
    """A Wan-style DiT: the numbers that decide its parameters, FLOPs and memory."""

    name: str
    dim: int
    ffn_dim: int
    heads: int
    layers: int
    latent_channels: int = 16
    text_dim: int = 4096  # umT5-XXL hidden size in Wan 2.1
    text_len: int = 512
    vae_base_channels: int = 96  # widest decoder stage / 4, for the decode working set
    trained: bool = False
    full_layers: int | None = None  # for depth-truncated variants: the real depth
    # Blocks whose weights are resident but which the video tokens do not pass through
    # (HunyuanVideo's text-stream half of its 20 double-stream blocks): memory, no FLOPs.
    weight_only_layers: int = 0

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def truncated(self, layers: int) -> Shape:
        return replace(self, name=f"{self.name}-L{layers}", layers=layers, full_layers=self.layers)


PRESETS: dict[str, Shape] = {
    "tiny-cpu": Shape(
        "tiny-cpu",
        dim=128,
        ffn_dim=384,
        heads=4,
        layers=4,
        latent_channels=16,
        text_dim=64,
        text_len=8,
        vae_base_channels=32,
        trained=True,
    ),
    # Wan 2.1 config.json: dim 1536, ffn_dim 8960, num_heads 12, num_layers 30.
    "wan-1.3b-shape": Shape("wan-1.3b-shape", dim=1536, ffn_dim=8960, heads=12, layers=30),
    # Wan 2.1 14B: dim 5120, ffn_dim 13824, num_heads 40, num_layers 40.
    "wan-14b-shape": Shape("wan-14b-shape", dim=5120, ffn_dim=13824, heads=40, layers=40),
    # HunyuanVideo: hidden 3072, 24 heads, MLP ratio 4, 20 double-stream + 40 single-stream
    # blocks. Modelled as 60 Wan-style blocks of that width, plus the double-stream blocks'
    # text-side weights as weight-only layers (planning only; not built here).
    "hunyuan-shape": Shape(
        "hunyuan-shape",
        dim=3072,
        ffn_dim=12288,
        heads=24,
        layers=60,
        text_len=256,
        weight_only_layers=20,
    ),
}

_TRUNCATED = re.compile(r"^(?P<base>.+)-L(?P<layers>\d+)$")


def shape_get(name: str) -> Shape:
    """A preset by name; ``NAME-L<n>`` keeps the first n layers of a shape preset."""
    if name in PRESETS:
        return PRESETS[name]
    match = _TRUNCATED.match(name)
    if match and match["base"] in PRESETS:
        base, layers = PRESETS[match["base"]], int(match["layers"])
        if base.trained:
            raise ValueError(
                f"preset {match['base']!r} has trained weights; it cannot be truncated"
            )
        if not 1 <= layers <= base.layers:
            raise ValueError(f"{name}: layers must be 1..{base.layers}")
        return base.truncated(layers)
    known = ", ".join(sorted(PRESETS))
    raise ValueError(f"unknown preset {name!r}; known: {known} (and SHAPE-L<n> for depth)")


def latent_grid(frames: int, height: int, width: int) -> tuple[int, int, int]:
    """Latent (frames, height, width) of a clip; frames must be 4k+1, sides multiples of 16."""
    if frames < 1 or (frames - 1) % VAE_STRIDE[0]:
        raise ValueError(f"frames must be 4k+1 (1, 5, 9, ... 81), got {frames}")
    side = VAE_STRIDE[1] * PATCH[1]
    for label, value in (("height", height), ("width", width)):
        if value < side or value % side:
            raise ValueError(f"{label} must be a positive multiple of {side}, got {value}")
    return 1 + (frames - 1) // VAE_STRIDE[0], height // VAE_STRIDE[1], width // VAE_STRIDE[2]


def token_count(frames: int, height: int, width: int) -> int:
    """Tokens the DiT attends over: latent grid / patch (1,2,2)."""
    t, h, w = latent_grid(frames, height, width)
    return (t // PATCH[0]) * (h // PATCH[1]) * (w // PATCH[2])


def param_count(shape: Shape) -> int:
    """Parameters of `inference.model.VideoDiT` for this shape (exact; checked in tests)."""
    d, f, c = shape.dim, shape.ffn_dim, shape.latent_channels
    patch = PATCH[0] * PATCH[1] * PATCH[2]
    embed = c * patch * d + d  # Conv3d patch embedding
    text = shape.text_dim * d + d + d * d + d  # Linear, GELU, Linear
    time = FREQ_DIM * d + d + d * d + d + d * 6 * d + 6 * d  # MLP + projection to 6 modulations
    attention = 4 * (d * d + d) + 2 * d  # q, k, v, o + RMSNorm on q and k
    block = 2 * attention + 2 * d + (d * f + f + f * d + d) + 6 * d  # self, cross, norm3, ffn, mod
    head = d * c * patch + c * patch + 2 * d
    return embed + text + time + (shape.layers + shape.weight_only_layers) * block + head


def flops_per_forward(shape: Shape, tokens: int, batch: int = 1) -> float:
    """Multiply-adds x 2 of one denoiser forward (linear layers and attention matmuls)."""
    d, f, n, m = shape.dim, shape.ffn_dim, tokens, shape.text_len
    per_layer = (
        2 * n * 4 * d * d  # self-attention q, k, v, o
        + 2 * 2 * n * n * d  # QK^T and AV
        + 2 * n * 2 * d * d  # cross-attention q, o
        + 2 * m * 2 * d * d  # cross-attention k, v over the text
        + 2 * 2 * n * m * d  # cross-attention matmuls
        + 2 * n * 2 * d * f  # FFN
    )
    patch = PATCH[0] * PATCH[1] * PATCH[2]
    outer = 2 * n * d * shape.latent_channels * patch * 2 + 2 * m * (shape.text_dim * d + d * d)
    return float(batch * (shape.layers * per_layer + outer))


def attention_fraction(shape: Shape, tokens: int) -> float:
    """Share of a forward's FLOPs in the self-attention matmuls (the L^2 part)."""
    return shape.layers * 4 * tokens * tokens * shape.dim / flops_per_forward(shape, tokens)


def naive_attention_bytes(shape: Shape, tokens: int, dtype_bytes: int = 2) -> int:
    """One layer's attention matrix materialised: heads x L^2 x bytes (public rule of thumb)."""
    return shape.heads * tokens * tokens * dtype_bytes


# Hidden-size vectors per token held through the whole block stack: the patch-embedded
# tokens (kept for the caches' residual) and the residual stream.
RESIDUAL_VECTORS = 2
# Above those, the widest phase of a block in inference (no autograd), as measured per
# phase on the CPU (bench/runner.py, docs/inference.md): attention, 9 vectors (the
# modulated input and its normalised form, q and k before and after the rotation, v, the
# output and its re-layout); the FFN, 3 vectors plus its two ffn_dim-wide intermediates
# (fc1 output and its activation).
ATTENTION_PHASE_VECTORS = 9
FFN_PHASE_VECTORS = 3


@dataclass(frozen=True)
class MemoryEstimate:
    weights_bytes: int
    activation_bytes: int
    attention_bytes: int
    text_bytes: int
    outside_bytes: int = 0  # held outside the block stack: rotary tables, head output

    @property
    def peak_bytes(self) -> int:
        return (self.weights_bytes + self.activation_bytes + self.attention_bytes
                + self.text_bytes + self.outside_bytes)  # fmt: skip


def memory_estimate(
    shape: Shape,
    tokens: int,
    *,
    dtype_bytes: int = 2,
    batch: int = 1,
    attention: str = "flash",
) -> MemoryEstimate:
    """Peak memory of the denoiser: weights + the widest phase of one block + what the
    forward holds outside its blocks.

    ``attention``: 'math' materialises scores and probabilities (2 x heads x L^2 per batch
    item); 'flash' and 'efficient' work in tiles (no L^2 term)."""
    d, f = shape.dim, shape.ffn_dim
    widest = max(ATTENTION_PHASE_VECTORS * d, FFN_PHASE_VECTORS * d + 2 * f)
    activation = batch * tokens * (RESIDUAL_VECTORS * d + widest) * dtype_bytes
    scratch = 2 * batch * shape.heads * tokens * tokens * dtype_bytes if attention == "math" else 0
    text = batch * shape.text_len * (shape.text_dim + d) * dtype_bytes
    # Outside the blocks, alive at the end of the forward: the rotary angles with their
    # cosines and sines (3 x head_dim/2 a token, shared by the batch), and per batch item
    # the head's output and its unpatchified copy (latent channels x patch volume each).
    patch = PATCH[0] * PATCH[1] * PATCH[2]
    outside = tokens * (3 * (shape.head_dim // 2) + batch * 2 * shape.latent_channels * patch)
    return MemoryEstimate(param_count(shape) * dtype_bytes, activation, scratch, text,
                          outside * dtype_bytes)  # fmt: skip
