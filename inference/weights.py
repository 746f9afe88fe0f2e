"""Building models for a preset and loading the tiny preset's shipped weights."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from inference.model import CausalVAE, PromptEncoder, VideoDiT
from inference.scenes import VOCABULARY
from inference.shapes import Shape

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass
class Bundle:
    """What a run needs: the denoiser, and for trained presets the autoencoder and prompt
    encoder (shape presets use random context and skip decoding)."""

    shape: Shape
    dit: VideoDiT
    vae: CausalVAE | None
    text: PromptEncoder | None
    metadata: dict[str, str]


def tiny_modules(shape: Shape) -> tuple[VideoDiT, CausalVAE, PromptEncoder]:
    return (
        VideoDiT(shape),
        CausalVAE(shape.vae_base_channels, shape.latent_channels),
        PromptEncoder(VOCABULARY, shape.text_dim, shape.text_len),
    )


def bundle_save(path: Path, bundle: Bundle) -> None:
    if bundle.vae is None or bundle.text is None:
        raise ValueError("only a trained preset (autoencoder and prompt encoder) can be saved")
    tensors = {
        **{f"dit.{k}": v for k, v in bundle.dit.state_dict().items()},
        **{f"vae.{k}": v for k, v in bundle.vae.state_dict().items()},
        **{f"text.{k}": v for k, v in bundle.text.state_dict().items()},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=bundle.metadata)


def bundle_load(shape: Shape, path: Path | None = None) -> Bundle:
    """The trained preset from its safetensors file (default: the shipped one)."""
    path = path or WEIGHTS_DIR / f"{shape.name}.safetensors"
    if not path.exists():
        raise FileNotFoundError(
            f"weights for {shape.name} not found at {path}; "
            f"reproduce them with: python -m inference train --out {path}"
        )
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
    tensors = load_file(str(path))
    dit, vae, text = tiny_modules(shape)
    for prefix, module in (("dit.", dit), ("vae.", vae), ("text.", text)):
        module.load_state_dict(
            {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        )
        module.eval()
    return Bundle(shape, dit, vae, text, metadata)


def bundle_random(shape: Shape, *, seed: int, device: torch.device, dtype: torch.dtype) -> Bundle:
    """A shape preset with random weights, built directly on the target device."""
    torch.manual_seed(seed)
    with torch.device(device):
        dit = VideoDiT(shape).to(dtype).eval()
    return Bundle(shape, dit, None, None, {"weights": "random", "seed": str(seed)})


def tensors_digest(path: Path) -> str:
    """SHA-256 over the tensors (sorted by name: name, dtype, shape, bytes). The file's own
    hash is no use for reproduction: safetensors writes its metadata in no fixed order."""
    digest = hashlib.sha256()
    tensors = load_file(str(path))
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
