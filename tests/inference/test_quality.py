"""The usable gate on clips whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from inference.quality import consecutive_ssim, flicker_score, judge, ssim
from inference.scenes import Prompt, clip_sample, prompt_parse


@pytest.fixture
def clip():
    return clip_sample(np.random.default_rng(3), 17, Prompt("red", "circle", "right"))


def test_a_true_clip_passes_every_criterion(clip):
    prompt, video, _ = clip
    verdict = judge(video, prompt)
    assert verdict.usable, verdict
    assert verdict.trajectory_error < 0.02
    assert verdict.flicker > 0.99


def test_injected_flicker_fails_the_gate(clip):
    prompt, video, _ = clip
    flickering = video.copy()
    flickering[1::2] = np.clip(flickering[1::2].astype(int) + 60, 0, 255).astype(np.uint8)
    verdict = judge(flickering, prompt)
    assert not verdict.usable
    assert "flicker" in verdict.failed
    assert flicker_score(flickering) < flicker_score(video) - 0.1


def test_noise_frames_fail_ssim(clip):
    prompt, video, _ = clip
    noisy = video.copy()
    rng = np.random.default_rng(0)
    noisy[8] = rng.integers(0, 256, size=noisy[8].shape, dtype=np.uint8)
    assert consecutive_ssim(noisy) < consecutive_ssim(video)
    assert "ssim" in judge(noisy, prompt).failed


def test_wrong_motion_fails_the_trajectory(clip):
    _, video, _ = clip
    verdict = judge(video, Prompt("red", "circle", "left"))
    assert "trajectory_error" in verdict.failed
    # A shape of another colour is not found at all.
    assert judge(video, Prompt("blue", "circle", "right")).trajectory_error == 1.0


def test_flicker_matches_the_vbench_formula():
    a = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    a[1] = 51  # mean absolute difference 51 -> (255 - 51) / 255 = 0.8
    assert flicker_score(a) == pytest.approx(0.8)


def test_ssim_of_identical_images_is_one():
    image = np.random.default_rng(1).integers(0, 256, (32, 32)).astype(float)
    assert ssim(image, image) == pytest.approx(1.0)
    assert ssim(image, 255 - image) < 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("red circle", "motion"),
        ("red blue circle moving up", "colour"),
        ("red hexagon moving up", "hexagon"),
    ],
)
def test_prompts_name_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        prompt_parse(text)


@pytest.mark.parametrize("asked", ["circle", "square", "triangle"])
def test_the_wrong_shape_fails_the_gate_whatever_its_motion(asked):
    """A clip that moves as asked but shows another shape than the prompt asked for."""
    rng = np.random.default_rng(3)
    for drawn in ("circle", "square", "triangle"):
        _, video, _ = clip_sample(rng, 17, Prompt("green", drawn, "down"))
        verdict = judge(video, Prompt("green", asked, "down"))
        if drawn == asked:
            assert verdict.usable and verdict.shape_iou is not None and verdict.shape_iou > 0.95
        else:
            assert not verdict.usable and verdict.failed == ("shape",)
            assert verdict.shape_best_share == 0.0
