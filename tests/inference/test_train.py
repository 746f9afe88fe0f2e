"""A few training steps: the losses fall, and a seed reproduces the weights."""

from __future__ import annotations

import numpy as np
import torch

from inference.train import TrainConfig, train


def _short(seed: int = 0):
    return train(
        TrainConfig(
            seed=seed, vae_steps=40, dit_steps=40, latent_clips=128, vae_batch=4, dit_batch=16
        )
    )


def test_losses_fall_and_the_seed_reproduces_the_weights():
    first = _short()
    vae, dit = np.array(first.vae_losses), np.array(first.dit_losses)
    assert vae[-8:].mean() < 0.8 * vae[:8].mean()
    assert dit[-8:].mean() < 0.8 * dit[:8].mean()

    again = _short()
    for a, b in ((first.bundle.dit, again.bundle.dit), (first.bundle.vae, again.bundle.vae)):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y), name


def test_the_shipped_weights_are_the_ones_their_record_describes():
    import json

    from inference.weights import WEIGHTS_DIR, tensors_digest

    record = json.loads((WEIGHTS_DIR / "tiny-cpu.json").read_text())
    assert tensors_digest(WEIGHTS_DIR / "tiny-cpu.safetensors") == record["tensors_sha256"]
    assert record["command"].startswith("python -m inference train --seed 0")
