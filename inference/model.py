"""The video diffusion core: a Wan-style DiT, a tiny causal 3D autoencoder, a prompt encoder.

The DiT follows Wan 2.1's block: AdaLN time modulation (six vectors per block: shift, scale
and gate for self-attention and FFN), full 3D self-attention with 3D rotary positions and
RMS-normalised queries and keys, cross-attention to a text context, a GELU FFN; patch
(1,2,2) in and out. Attention goes through `scaled_dot_product_attention` under the backend
the caller picks, so a report can say which kernel ran.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from inference.shapes import FREQ_DIM, PATCH, VAE_STRIDE, Shape

BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}


def backend_resolve(name: str, *, device: torch.device, dtype: torch.dtype, head_dim: int) -> str:
    """The SDPA backend to run: ``name`` if it runs here, or for 'auto' the first of
    flash, efficient, math that does (probed on a small tensor of the real head size)."""
    if name != "auto" and name not in BACKENDS:
        raise ValueError(f"attention backend must be auto, flash, efficient or math, not {name!r}")
    candidates = list(BACKENDS) if name == "auto" else [name]
    probe = torch.zeros(1, 2, 16, head_dim, device=device, dtype=dtype)
    for candidate in candidates:
        try:
            with sdpa_kernel(BACKENDS[candidate]):
                F.scaled_dot_product_attention(probe, probe, probe)
        except RuntimeError:
            continue
        return candidate
    raise RuntimeError(f"attention backend {name!r} cannot run on {device} with {dtype}")


@contextmanager
def attention_backend(name: str) -> Iterator[None]:
    with sdpa_kernel(BACKENDS[name]):
        yield


def timestep_features(t: torch.Tensor, dim: int = FREQ_DIM) -> torch.Tensor:
    """Sinusoidal features of timesteps in [0, 1000]."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)


def rope_3d(grid: tuple[int, int, int], head_dim: int, device: torch.device) -> torch.Tensor:
    """Rotary angles for every token of a (t, h, w) grid: head_dim split as Wan does
    (height and width 2*(d//6) each, time the rest). Shape (tokens, head_dim // 2)."""
    hw = 2 * (head_dim // 6)
    parts = (head_dim - 2 * hw, hw, hw)
    axes = []
    for size, part in zip(grid, parts, strict=True):
        freqs = 1.0 / (10000 ** (torch.arange(0, part, 2, device=device).float() / part))
        axes.append(torch.outer(torch.arange(size, device=device).float(), freqs))
    t, h, w = grid
    return torch.cat(
        [
            axes[0][:, None, None, :].expand(t, h, w, -1),
            axes[1][None, :, None, :].expand(t, h, w, -1),
            axes[2][None, None, :, :].expand(t, h, w, -1),
        ],
        dim=-1,
    ).reshape(t * h * w, head_dim // 2)


def rope_apply(x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """x: (batch, heads, tokens, head_dim); rotates consecutive pairs by the angles whose
    (cos, sin) are given, each (tokens, head_dim // 2)."""
    cos, sin = rope
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    return (
        torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2).type_as(x)
    )


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim), RMSNorm(dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, -1).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        source = x if context is None else context
        q = self._split(self.norm_q(self.q(x)))
        k = self._split(self.norm_k(self.k(source)))
        v = self._split(self.v(source))
        if rope is not None:
            q, k = rope_apply(q, rope), rope_apply(k, rope)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.o(out.transpose(1, 2).flatten(2))


class Block(nn.Module):
    def __init__(self, dim: int, ffn_dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.self_attn = Attention(dim, heads)
        self.norm3 = nn.LayerNorm(dim, eps=1e-6)
        self.cross_attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim)
        )
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim**0.5)

    def modulate(self, x: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The six modulation vectors and the modulated self-attention input (the signal
        TeaCache watches)."""
        mods = (self.modulation + e).chunk(6, dim=1)
        return (*mods, self.norm1(x) * (1 + mods[1]) + mods[0])

    def forward(
        self,
        x: torch.Tensor,
        e: torch.Tensor,
        context: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        _, _, gate1, shift2, scale2, gate2, attn_in = self.modulate(x, e)
        x = x + gate1 * self.self_attn(attn_in, rope=rope)
        x = x + self.cross_attn(self.norm3(x), context=context)
        return x + gate2 * self.ffn(self.norm2(x) * (1 + scale2) + shift2)


@dataclass
class Prepared:
    """A denoiser forward split into parts, so caches can skip the block stack."""

    tokens: torch.Tensor
    e_time: torch.Tensor
    e_blocks: torch.Tensor
    context: torch.Tensor
    rope: tuple[torch.Tensor, torch.Tensor]  # cos and sin of the rotary angles
    grid: tuple[int, int, int]


class VideoDiT(nn.Module):
    """Predicts the flow-matching velocity of latents (B, C, T, H, W) at timesteps (B,)."""

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        d, c = shape.dim, shape.latent_channels
        self.shape = shape
        self.patch_embedding = nn.Conv3d(c, d, kernel_size=PATCH, stride=PATCH)
        self.text_embedding = nn.Sequential(
            nn.Linear(shape.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d)
        )
        self.time_embedding = nn.Sequential(nn.Linear(FREQ_DIM, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList(
            Block(d, shape.ffn_dim, shape.heads) for _ in range(shape.layers)
        )
        self.head_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.head = nn.Linear(d, c * math.prod(PATCH))
        self.head_modulation = nn.Parameter(torch.randn(1, 2, d) / d**0.5)

    def prepare(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> Prepared:
        tokens = self.patch_embedding(x)
        grid = (tokens.shape[2], tokens.shape[3], tokens.shape[4])
        tokens = tokens.flatten(2).transpose(1, 2)
        e_time = self.time_embedding(timestep_features(t).to(tokens.dtype))
        e_blocks = self.time_projection(e_time).unflatten(1, (6, self.shape.dim))
        angles = rope_3d(grid, self.shape.head_dim, x.device)
        rope = (angles.cos(), angles.sin())
        return Prepared(tokens, e_time, e_blocks, self.text_embedding(context), rope, grid)

    def run_blocks(
        self, p: Prepared, x: torch.Tensor, first: int = 0, last: int | None = None
    ) -> torch.Tensor:
        for block in self.blocks[first:last]:
            x = block(x, p.e_blocks, p.context, p.rope)
        return x

    def finish(self, p: Prepared, x: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.head_modulation + p.e_time[:, None]).chunk(2, dim=1)
        out = self.head(self.head_norm(x) * (1 + scale) + shift)
        b, c = out.shape[0], self.shape.latent_channels
        t, h, w = p.grid
        pt, ph, pw = PATCH
        out = out.view(b, t, h, w, pt, ph, pw, c)
        return out.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, c, t * pt, h * ph, w * pw)

    def forward(self, x: torch.Tensor, t: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        p = self.prepare(x, t, context)
        return self.finish(p, self.run_blocks(p, p.tokens))


class CausalConv3d(nn.Conv3d):
    """3D convolution that pads only the past in time: frame t sees frames <= t."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__(cin, cout, kernel_size=kernel)
        self.time_pad = kernel - 1
        self.space_pad = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.space_pad
        x = F.pad(x, (s, s, s, s, self.time_pad, 0), mode="replicate")
        return super().forward(x)


class CausalVAE(nn.Module):
    """A tiny causal video autoencoder: x4 in time, x8 in space, 16 latent channels.

    The first frame is encoded on its own (it is repeated three times in front, as causal
    video VAEs do), so ``frames = 4k + 1`` map to ``k + 1`` latent frames."""

    latent_mean: torch.Tensor
    latent_std: torch.Tensor

    def __init__(self, base: int = 32, latent_channels: int = 16) -> None:
        super().__init__()
        c = base
        down = (VAE_STRIDE[0], VAE_STRIDE[1] // 4, VAE_STRIDE[2] // 4)  # after a 1x4x4 patch
        self.encoder = nn.Sequential(
            nn.Conv3d(3, c, kernel_size=(1, 4, 4), stride=(1, 4, 4)),
            nn.SiLU(),
            CausalConv3d(c, 2 * c),
            nn.SiLU(),
            nn.Conv3d(2 * c, 4 * c, kernel_size=down, stride=down),
            nn.SiLU(),
            CausalConv3d(4 * c, 4 * c),
            nn.SiLU(),
            nn.Conv3d(4 * c, latent_channels, kernel_size=1),
        )  # fmt: skip
        self.decoder = nn.Sequential(
            nn.Conv3d(latent_channels, 4 * c, kernel_size=1),
            nn.SiLU(),
            CausalConv3d(4 * c, 4 * c),
            nn.SiLU(),
            nn.ConvTranspose3d(4 * c, 2 * c, kernel_size=down, stride=down),
            nn.SiLU(),
            CausalConv3d(2 * c, c),
            nn.SiLU(),
            nn.ConvTranspose3d(c, 3, kernel_size=(1, 4, 4), stride=(1, 4, 4)),
        )  # fmt: skip
        self.register_buffer("latent_mean", torch.zeros(latent_channels))
        self.register_buffer("latent_std", torch.ones(latent_channels))

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """video (B, 3, F, H, W) in [-1, 1] -> normalised latents (B, C, 1 + (F-1)/4, H/8, W/8)."""
        lead = VAE_STRIDE[0] - 1
        video = torch.cat([video[:, :, :1].expand(-1, -1, lead, -1, -1), video], dim=2)
        z = self.encoder(video)
        return (z - self.latent_mean[:, None, None, None]) / self.latent_std[:, None, None, None]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        z = z * self.latent_std[:, None, None, None] + self.latent_mean[:, None, None, None]
        return self.decoder(z)[:, :, VAE_STRIDE[0] - 1 :].clamp(-1, 1)


class PromptEncoder(nn.Module):
    """The tiny preset's text encoder: a word embedding and a learned position per slot.
    Empty slots (and the unconditional branch) are the pad word, index 0."""

    def __init__(self, vocabulary: list[str], dim: int, length: int) -> None:
        super().__init__()
        self.vocabulary = vocabulary
        self.length = length
        self.words = nn.Embedding(len(vocabulary), dim)
        self.positions = nn.Parameter(torch.randn(length, dim) * 0.02)

    def ids(self, prompt: str) -> list[int]:
        index = {w: i for i, w in enumerate(self.vocabulary)}
        words = prompt.lower().split()
        unknown = [w for w in words if w not in index]
        if unknown:
            known = ", ".join(self.vocabulary[1:])
            raise ValueError(f"prompt: unknown word(s) {', '.join(unknown)}; known: {known}")
        if len(words) > self.length:
            raise ValueError(f"prompt: at most {self.length} words, got {len(words)}")
        return [index[w] for w in words] + [0] * (self.length - len(words))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.words(ids) + self.positions
