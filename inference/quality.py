"""The quality gate that decides "usable": flicker, consecutive-frame SSIM, trajectory.

* flicker: VBench's temporal flickering score, (255 - mean absolute difference of
  consecutive uint8 frames) / 255, averaged over frame pairs; 1.0 is perfectly steady.
* SSIM: mean structural similarity of consecutive frames (grey, 7x7 box window,
  K1 0.01, K2 0.03), the usual Wang et al. 2004 definition.
* trajectory error (tiny preset): the shape of the prompt's colour is located in every
  frame; its displacement from the first frame is compared with the displacement the
  prompt's motion implies; mean error as a fraction of the frame side. A frame where the
  colour cannot be found counts as 1.0.
* shape match (tiny preset): in every frame where the colour is found, its pixels are
  compared (intersection over union) with the generator's own mask of each shape, placed
  where the found shape's centre is; the prompt's shape must match best in most frames and
  its mean IoU must reach the threshold, so a square or a triangle does not pass for
  "circle".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from inference.scenes import COLOURS, SHAPES, SIZE_PX, Prompt, shape_mask, trajectory

THRESHOLDS = {"flicker": 0.97, "ssim": 0.80, "trajectory_error": 0.08, "shape_iou": 0.6}
COLOUR_TOLERANCE = 90.0  # RGB distance for "this pixel is the prompt's colour"
MIN_PIXELS = 12


def flicker_score(video: np.ndarray) -> float:
    """video: uint8 (frames, H, W, 3)."""
    if video.dtype != np.uint8 or video.ndim != 4 or len(video) < 2:
        raise ValueError("flicker: need a uint8 video (frames >= 2, H, W, 3)")
    frames = video.astype(np.float64)
    mae = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    return float(((255.0 - mae) / 255.0).mean())


def _box(image: np.ndarray, k: int) -> np.ndarray:
    """Mean over k x k windows (valid region) via an integral image."""
    c = np.pad(image, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def ssim(a: np.ndarray, b: np.ndarray, k: int = 7) -> float:
    """SSIM of two grey images with values 0..255."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = a.astype(np.float64), b.astype(np.float64)
    mu_a, mu_b = _box(a, k), _box(b, k)
    var_a = _box(a * a, k) - mu_a**2
    var_b = _box(b * b, k) - mu_b**2
    cov = _box(a * b, k) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float((num / den).mean())


def consecutive_ssim(video: np.ndarray) -> float:
    grey = video.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    return float(np.mean([ssim(grey[i], grey[i + 1]) for i in range(len(grey) - 1)]))


def centroids(video: np.ndarray, colour: tuple[int, int, int]) -> list[tuple[float, float] | None]:
    distance = np.linalg.norm(video.astype(np.float64) - np.array(colour), axis=-1)
    found: list[tuple[float, float] | None] = []
    for mask in distance < COLOUR_TOLERANCE:
        ys, xs = np.nonzero(mask)
        found.append(
            (float(xs.mean()) + 0.5, float(ys.mean()) + 0.5) if len(xs) >= MIN_PIXELS else None
        )
    return found


def trajectory_error(video: np.ndarray, prompt: Prompt) -> float:
    located = centroids(video, COLOURS[prompt.colour])
    if located[0] is None:
        return 1.0
    expected = trajectory(prompt, len(video), (0.0, 0.0))
    origin = np.array(located[0])
    errors = [
        1.0
        if c is None
        else min(float(np.linalg.norm(np.array(c) - origin - expected[i])) / SIZE_PX, 1.0)
        for i, c in enumerate(located)
    ]
    return float(np.mean(errors))


def _aligned_iou(found: np.ndarray, shape: str) -> float:
    """IoU of a frame's colour mask with ``shape``'s mask centred where the found pixels'
    centre is (the template's own centre moved onto it: a triangle's centroid is not the
    centre it is drawn around)."""
    ys, xs = np.nonzero(found)
    cx, cy = float(xs.mean()) + 0.5, float(ys.mean()) + 0.5
    template = shape_mask(shape, cx, cy)
    ty, tx = np.nonzero(template)
    if len(tx):
        template = shape_mask(
            shape, 2 * cx - float(tx.mean()) - 0.5, 2 * cy - float(ty.mean()) - 0.5
        )
    union = np.logical_or(found, template).sum()
    return float(np.logical_and(found, template).sum() / union) if union else 0.0


def shape_match(video: np.ndarray, prompt: Prompt) -> tuple[float, float]:
    """(mean IoU with the prompt's shape over the frames where the colour is found, share
    of those frames where the prompt's shape matches best); (0, 0) when never found."""
    distance = np.linalg.norm(video.astype(np.float64) - np.array(COLOURS[prompt.colour]), axis=-1)
    ious, best = [], 0
    for found in distance < COLOUR_TOLERANCE:
        if found.sum() < MIN_PIXELS:
            continue
        scores = {shape: _aligned_iou(found, shape) for shape in SHAPES}
        ious.append(scores[prompt.shape])
        best += max(scores, key=lambda k: scores[k]) == prompt.shape
    if not ious:
        return 0.0, 0.0
    return float(np.mean(ious)), best / len(ious)


@dataclass(frozen=True)
class Verdict:
    flicker: float
    ssim: float
    trajectory_error: float | None
    usable: bool
    failed: tuple[str, ...]
    shape_iou: float | None = None
    shape_best_share: float | None = None

    @property
    def score(self) -> float:
        """One number in [0, 1] for the job API's quality_score: the weakest criterion
        relative to its threshold, capped at 1."""
        parts = [self.flicker / THRESHOLDS["flicker"], self.ssim / THRESHOLDS["ssim"]]
        if self.trajectory_error is not None:
            parts.append(1 - self.trajectory_error)
        if self.shape_iou is not None:
            parts.append(self.shape_iou / THRESHOLDS["shape_iou"])
        return float(max(0.0, min(1.0, *parts)))

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "failed": list(self.failed), "quality_score": self.score}


def judge(
    video: np.ndarray, prompt: Prompt | None, thresholds: dict[str, float] | None = None
) -> Verdict:
    """Scores and the usable verdict; each criterion must pass its threshold."""
    limits = {**THRESHOLDS, **(thresholds or {})}
    flicker, similarity = flicker_score(video), consecutive_ssim(video)
    error = trajectory_error(video, prompt) if prompt is not None else None
    iou, best = shape_match(video, prompt) if prompt is not None else (None, None)
    failed = [
        name for name, value in (("flicker", flicker), ("ssim", similarity)) if value < limits[name]
    ]
    if error is not None and error > limits["trajectory_error"]:
        failed.append("trajectory_error")
    if iou is not None and best is not None and (iou < limits["shape_iou"] or best <= 0.5):
        failed.append("shape")
    return Verdict(flicker, similarity, error, not failed, tuple(failed), iou, best)
