"""Training the tiny preset on procedural moving-shape videos, reproducibly from a seed.

Two stages: the causal autoencoder learns to reconstruct clips (pixel loss weighted
towards the shape, which covers a few percent of the frame); then, with the autoencoder
frozen and its latents normalised per channel, the DiT learns the flow-matching velocity
with the prompt dropped 10% of the time (for classifier-free guidance).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inference.scenes import clip_sample
from inference.shapes import PRESETS
from inference.weights import WEIGHTS_DIR, Bundle, bundle_save, tensors_digest, tiny_modules

TRAIN_FRAMES = 17
SAMPLING_SHIFT = 3.0
PROMPT_DROPOUT = 0.1


@dataclass
class TrainConfig:
    seed: int = 0
    vae_steps: int = 2000
    vae_batch: int = 8
    dit_steps: int = 2500
    dit_batch: int = 32
    latent_clips: int = 3072
    lr_vae: float = 2e-3
    lr_dit: float = 1e-3
    threads: int = 2


@dataclass
class TrainResult:
    bundle: Bundle
    vae_losses: list[float] = field(default_factory=list)
    dit_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def clips_batch(
    rng: np.random.Generator, n: int, text_ids: Callable[[str], list[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """n procedural clips as (video in [-1, 1] (n, 3, F, 64, 64), prompt ids (n, len))."""
    videos, ids = [], []
    for _ in range(n):
        prompt, video, _ = clip_sample(rng, TRAIN_FRAMES)
        videos.append(video)
        ids.append(text_ids(prompt.text))
    array = np.stack(videos).astype(np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(0, 4, 1, 2, 3).contiguous(), torch.tensor(ids)


def _lr(step: int, total: int, peak: float) -> float:
    warm = max(total // 20, 1)
    if step < warm:
        return peak * (step + 1) / warm
    return float(peak * 0.5 * (1 + np.cos(np.pi * (step - warm) / max(total - warm, 1))))


def train(
    config: TrainConfig, progress: Callable[[str, int, int, float], None] | None = None
) -> TrainResult:
    """Both stages; deterministic for a seed and thread count on one machine."""
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(config.seed)
    shape = PRESETS["tiny-cpu"]
    dit, vae, text = tiny_modules(shape)
    result = TrainResult(Bundle(shape, dit, vae, text, {}))

    optimiser = torch.optim.AdamW(vae.parameters(), lr=config.lr_vae, weight_decay=0.0)
    for step in range(config.vae_steps):
        for group in optimiser.param_groups:
            group["lr"] = _lr(step, config.vae_steps, config.lr_vae)
        video, _ = clips_batch(rng, config.vae_batch, text.ids)
        recon = vae.decoder(vae.encoder(_lead(video)))[:, :, 3:]
        weight = 1.0 + 8.0 * (video > -0.95).any(dim=1, keepdim=True).float()
        loss = (weight * (recon - video) ** 2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        result.vae_losses.append(float(loss.detach()))
        if progress:
            progress("autoencoder", step + 1, config.vae_steps, result.vae_losses[-1])

    vae.eval()
    with torch.no_grad():
        latents, ids = [], []
        for _ in range(0, config.latent_clips, 64):
            video, batch_ids = clips_batch(rng, 64, text.ids)
            latents.append(vae.encoder(_lead(video)))
            ids.append(batch_ids)
        raw = torch.cat(latents)[: config.latent_clips]
        all_ids = torch.cat(ids)[: config.latent_clips]
        vae.latent_mean.copy_(raw.mean(dim=(0, 2, 3, 4)))
        vae.latent_std.copy_(raw.std(dim=(0, 2, 3, 4)).clamp_min(1e-4))
        data = (raw - vae.latent_mean[:, None, None, None]) / vae.latent_std[:, None, None, None]

    params = list(dit.parameters()) + list(text.parameters())
    optimiser = torch.optim.AdamW(params, lr=config.lr_dit, weight_decay=0.01)
    generator = torch.Generator().manual_seed(config.seed + 1)
    for step in range(config.dit_steps):
        for group in optimiser.param_groups:
            group["lr"] = _lr(step, config.dit_steps, config.lr_dit)
        pick = torch.randint(len(data), (config.dit_batch,), generator=generator)
        x0, batch_ids = data[pick], all_ids[pick].clone()
        drop = torch.rand(config.dit_batch, generator=generator) < PROMPT_DROPOUT
        batch_ids[drop] = 0
        u = torch.rand(config.dit_batch, generator=generator, dtype=torch.float64)
        sigma = (SAMPLING_SHIFT * u / (1 + (SAMPLING_SHIFT - 1) * u)).float()
        noise = torch.randn(x0.shape, generator=generator)
        s = sigma[:, None, None, None, None]
        x_t = (1 - s) * x0 + s * noise
        prediction = dit(x_t, sigma * 1000.0, text(batch_ids))
        loss = F.mse_loss(prediction, noise - x0)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        result.dit_losses.append(float(loss.detach()))
        if progress:
            progress("denoiser", step + 1, config.dit_steps, result.dit_losses[-1])
    for module in (dit, vae, text):
        module.eval()
    result.seconds = time.perf_counter() - started
    return result


def _lead(video: torch.Tensor) -> torch.Tensor:
    """Repeat the first frame three times in front (the causal encoder's convention)."""
    return torch.cat([video[:, :, :1].expand(-1, -1, 3, -1, -1), video], dim=2)


def weights_write(result: TrainResult, config: TrainConfig, path: Path | None = None) -> Path:
    """The safetensors file and a JSON sidecar recording how to reproduce it."""
    path = path or WEIGHTS_DIR / "tiny-cpu.safetensors"
    command = (
        f"python -m inference train --seed {config.seed} --vae-steps {config.vae_steps} "
        f"--dit-steps {config.dit_steps} --threads {config.threads} --out {path.name}"
    )
    result.bundle.metadata = {"preset": "tiny-cpu", "seed": str(config.seed), "command": command}
    bundle_save(path, result.bundle)
    sidecar = {
        "preset": "tiny-cpu",
        "command": command,
        "config": config.__dict__,
        "torch": torch.__version__,
        "machine": platform.machine(),
        "train_seconds": round(result.seconds, 1),
        "vae_loss_first_last": [result.vae_losses[0], result.vae_losses[-1]],
        "dit_loss_first_last": [result.dit_losses[0], result.dit_losses[-1]],
        "tensors_sha256": tensors_digest(path),
        "bytes": path.stat().st_size,
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return path
