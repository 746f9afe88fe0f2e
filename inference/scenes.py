"""Procedural training videos: one coloured shape moving in a straight line on black.

A prompt names colour, shape and motion ("red circle moving right"); the generator knows
each clip's trajectory, so a generated clip's motion can be checked against its prompt.
Numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 210, 60),
    "blue": (50, 90, 240),
    "yellow": (235, 220, 40),
}
SHAPES = ("circle", "square", "triangle")
MOTIONS: dict[str, tuple[float, float]] = {  # (dx, dy) direction; y grows downwards
    "right": (1.0, 0.0),
    "left": (-1.0, 0.0),
    "up": (0.0, -1.0),
    "down": (0.0, 1.0),
}
VOCABULARY = ["<pad>", "moving", *COLOURS, *SHAPES, *MOTIONS]
SIZE_PX = 64
RADIUS_PX = 9.0
TRAVEL_PX = 34.0  # over the whole clip, whatever its length


@dataclass(frozen=True)
class Prompt:
    colour: str
    shape: str
    motion: str

    @property
    def text(self) -> str:
        return f"{self.colour} {self.shape} moving {self.motion}"


def prompt_parse(text: str) -> Prompt:
    """'red circle moving right' -> Prompt; names what is missing or unknown."""
    words = text.lower().replace(",", " ").split()
    found: dict[str, list[str]] = {"colour": [], "shape": [], "motion": []}
    unknown = []
    for word in words:
        if word in COLOURS:
            found["colour"].append(word)
        elif word in SHAPES:
            found["shape"].append(word)
        elif word in MOTIONS:
            found["motion"].append(word)
        elif word != "moving":
            unknown.append(word)
    options = {"colour": COLOURS, "shape": SHAPES, "motion": MOTIONS}
    if unknown:
        raise ValueError(f"prompt: unknown word(s) {', '.join(unknown)}")
    for part, values in found.items():
        if len(values) != 1:
            choices = ", ".join(options[part])
            raise ValueError(f"prompt: name exactly one {part} ({choices}); got {values or 'none'}")
    return Prompt(found["colour"][0], found["shape"][0], found["motion"][0])


def all_prompts() -> list[Prompt]:
    return [Prompt(c, s, m) for c in COLOURS for s in SHAPES for m in MOTIONS]


def trajectory(prompt: Prompt, frames: int, start: tuple[float, float]) -> np.ndarray:
    """Centre (x, y) per frame: a straight line of TRAVEL_PX in the prompt's direction."""
    dx, dy = MOTIONS[prompt.motion]
    step = TRAVEL_PX / max(frames - 1, 1)
    t = np.arange(frames, dtype=float)[:, None]
    return np.asarray(start, dtype=float)[None] + t * step * np.array([dx, dy])[None]


def start_sample(prompt: Prompt, rng: np.random.Generator) -> tuple[float, float]:
    """A start that keeps the whole path inside the frame: it begins near the edge the shape
    moves away from, anywhere across the other axis."""
    margin = RADIUS_PX + 2
    along = margin + rng.uniform(0, SIZE_PX - 2 * margin - TRAVEL_PX)
    across = rng.uniform(margin + 6, SIZE_PX - margin - 6)
    dx, dy = MOTIONS[prompt.motion]
    if dx:
        x = along if dx > 0 else SIZE_PX - along
        return x, across
    y = along if dy > 0 else SIZE_PX - along
    return across, y


def shape_mask(shape: str, cx: float, cy: float) -> np.ndarray:
    y, x = np.mgrid[0:SIZE_PX, 0:SIZE_PX] + 0.5
    if shape == "circle":
        return (x - cx) ** 2 + (y - cy) ** 2 <= RADIUS_PX**2
    if shape == "square":
        half = RADIUS_PX * 0.85
        return (np.abs(x - cx) <= half) & (np.abs(y - cy) <= half)
    # triangle pointing up, centred on (cx, cy)
    top, bottom, half = cy - RADIUS_PX, cy + RADIUS_PX * 0.8, RADIUS_PX
    frac = (y - top) / (bottom - top)
    return (y >= top) & (y <= bottom) & (np.abs(x - cx) <= frac * half)


def render(prompt: Prompt, centres: np.ndarray) -> np.ndarray:
    """uint8 video (frames, 64, 64, 3)."""
    video = np.zeros((len(centres), SIZE_PX, SIZE_PX, 3), dtype=np.uint8)
    colour = np.array(COLOURS[prompt.colour], dtype=np.uint8)
    for i, (cx, cy) in enumerate(centres):
        video[i][shape_mask(prompt.shape, cx, cy)] = colour
    return video


def clip_sample(
    rng: np.random.Generator, frames: int, prompt: Prompt | None = None
) -> tuple[Prompt, np.ndarray, np.ndarray]:
    """A random (or given) prompt, its video and its true trajectory."""
    if prompt is None:
        prompts = all_prompts()
        prompt = prompts[int(rng.integers(len(prompts)))]
    centres = trajectory(prompt, frames, start_sample(prompt, rng))
    return prompt, render(prompt, centres), centres
