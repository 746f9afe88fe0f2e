"""The runner end to end with the shipped tiny-cpu weights, and its job reaching FrameOps."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import torch
from django.core.management import call_command

from finops.fleet.models import GpuModel
from finops.jobs.models import RenderJob
from finops.pricing.models import PriceRate
from inference.__main__ import main
from inference.pipeline import pipeline_get
from inference.plan import Workload, plan
from inference.runner import RunOptions, bundle_for, run_clip
from inference.scenes import all_prompts


@pytest.fixture(scope="module")
def bundle():
    torch.set_num_threads(2)
    return bundle_for(RunOptions(), torch.device("cpu"), torch.float32)


def test_a_tiny_clip_is_written_with_its_report(bundle, tmp_path):
    result = run_clip(
        RunOptions(prompt="blue square moving up", seed=4, out=tmp_path), bundle=bundle
    )
    report = result.report
    assert (tmp_path / "clip.gif").stat().st_size > 0
    assert len(list(tmp_path.glob("frame_*.png"))) == 17
    assert json.loads((tmp_path / "report.json").read_text())["run_id"] == report["run_id"]
    assert report["tokens"] == 80
    assert report["denoiser_forwards"] == 60  # 30 steps x 2 CFG branches, batched
    assert report["forwards_skipped"] == 0
    assert set(report["phase_times_s"]) >= {"encode_s", "denoise_s", "decode_s"}
    assert report["flops"] == pytest.approx(60 * report["flops_per_forward"])
    assert report["peak_memory"]["rss_peak_bytes"] > 0
    assert report["attention_backend"] in {"flash", "efficient", "math"}
    assert result.video.shape == (17, 64, 64, 3)


def test_most_seeds_give_usable_clips_of_the_prompted_motion(bundle):
    # bench/runner.py measures the share over 20 seeds (90% when last recorded); ten
    # seeds here, a margin below it.
    prompts = all_prompts()
    reports = [
        run_clip(
            RunOptions(prompt=prompts[(s * 5) % len(prompts)].text, seed=100 + s), bundle=bundle
        ).report
        for s in range(10)
    ]
    assert sum(bool(r["usable"]) for r in reports) >= 7, [r["quality"]["failed"] for r in reports]


def test_a_cached_run_stays_close_to_the_uncached_run(bundle):
    plain = run_clip(RunOptions(seed=7), bundle=bundle)
    cached = run_clip(RunOptions(seed=7, cache="teacache:0.05"), bundle=bundle)
    assert cached.report["forwards_skipped"] > 0
    assert cached.report["cache_hit_rate_by_branch"]["cond+uncond"] > 0
    assert abs(plain.report["quality"]["flicker"] - cached.report["quality"]["flicker"]) < 0.01
    difference = (plain.video.astype(float) - cached.video.astype(float)).__abs__().mean() / 255
    assert difference < 0.02


def test_bad_options_are_named(bundle):
    with pytest.raises(ValueError, match="frames must be 4k"):
        run_clip(RunOptions(frames=16), bundle=bundle)
    with pytest.raises(ValueError, match="64x64"):
        run_clip(RunOptions(height=128, width=128), bundle=bundle)
    with pytest.raises(ValueError, match="colour"):
        run_clip(RunOptions(prompt="circle moving right"), bundle=bundle)


@pytest.mark.django_db(transaction=True)
def test_the_job_report_reaches_a_live_frameops(server, team_a, make_key, tmp_path, capsys):
    key = make_key("ingest:write")
    code = main([
        "run", "--prompt", "red circle moving right", "--seed", "2", "--steps", "12",
        "--out", str(tmp_path), "--report-to", server.url, "--key", key, "--team", "studio-a",
        "--project", "qualification", "--clip-id", "clip-1",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "report.json").read_text())
    job = RenderJob.objects.get(source="frameops-runner", external_id=report["run_id"])
    assert job.team == team_a
    assert job.model_name == "tiny-cpu"
    assert job.status == "succeeded"
    assert job.compute_device == "cpu"
    assert job.compute_seconds == pytest.approx(report["compute_seconds"])
    assert job.compute_seconds > 0
    assert job.usable == report["usable"]
    assert job.quality_score == pytest.approx(report["quality"]["quality_score"])
    assert (job.frames, job.steps, job.clip.external_id) == (17, 12, "clip-1")
    assert job.finished_at >= job.started_at


@pytest.mark.django_db(transaction=True)
def test_a_rejected_report_says_why(server, team_a, make_key, tmp_path, capsys):
    key = make_key("read")  # cannot write jobs
    code = main(
        ["run", "--steps", "4", "--report-to", server.url, "--key", key, "--team", "studio-a"]
    )
    assert code == 3
    assert "403" in capsys.readouterr().err


@pytest.mark.django_db
def test_plan_prices_a_usable_second_with_the_loaded_rates(capsys, tmp_path):
    h100 = GpuModel.objects.get(name="H100 SXM")
    PriceRate.objects.create(
        provider="aws", sku="p5.48xlarge", region="us-east-1", pricing_model="on-demand",
        gpu_model=h100, gpus_per_unit=8, price_per_unit_hour=Decimal("24.00"),
        price_per_gpu_hour=Decimal("3.00"), valid_from="2026-01-01T00:00:00Z", source="csv",
    )  # fmt: skip
    # FrameOps hands its loaded rates to the planner (which imports no Django) as a file.
    prices = tmp_path / "prices.json"
    call_command("planner_prices", "--output", str(prices))
    assert json.loads(prices.read_text())["H100 SXM"] == {
        "price": "3.000000",
        "source": "cheapest on-demand rate",
    }
    code = main([
        "plan", "--shape", "wan-1.3b", "--height", "480", "--width", "832", "--frames", "81",
        "--regen-rate", "0.5", "--json", "--prices", str(prices),
    ])  # fmt: skip
    assert code == 0
    rows = {r["gpu"]: r for r in json.loads(capsys.readouterr().out)}
    h100_row = rows["H100 SXM"]
    assert h100_row["price_source"] == "cheapest on-demand rate"
    # $3 per GPU-hour over the row's own time per clip, per usable second: 81 frames at
    # 16 fps, half of the attempts usable (each usable clip takes two).
    expected = h100_row["seconds_per_clip"] / 3600 * 3.0 / (81 / 16 * 0.5)
    assert float(h100_row["cost_per_usable_second"]) == pytest.approx(expected, rel=2e-3)
    # A faster GPU takes less time per clip: the H200 has more memory bandwidth, the L4
    # about a tenth of the H100's compute.
    assert rows["L4"]["seconds_per_clip"] > 5 * h100_row["seconds_per_clip"]
    assert rows["L4"]["cost_per_usable_second"] is None  # no price loaded for it
    # Every attempt usable: half the cost per usable second.
    main(["plan", "--shape", "wan-1.3b", "--height", "480", "--width", "832", "--frames", "81",
          "--json", "--prices", str(prices)])  # fmt: skip
    once = {r["gpu"]: r for r in json.loads(capsys.readouterr().out)}["H100 SXM"]
    assert float(once["cost_per_usable_second"]) == pytest.approx(
        float(h100_row["cost_per_usable_second"]) / 2, rel=2e-3
    )


def test_a_bad_prices_file_is_named(tmp_path):
    from inference.plan import prices_read

    bad = tmp_path / "prices.json"
    bad.write_text('{"H100 SXM": {"price": "-1"}}')
    with pytest.raises(ValueError, match="'H100 SXM': price must be a number >= 0"):
        prices_read(bad)
    bad.write_text('{"H100 SXM": 3}')
    with pytest.raises(ValueError, match="'H100 SXM': expected"):
        prices_read(bad)


def test_plan_marks_what_does_not_fit():
    workload = Workload(pipeline_get("wan-14b"), 720, 1280, 81)
    rows = {r.gpu: r for r in plan(workload, {})}
    assert not rows["L4"].fits  # 57 GB of float32 weights on a 24 GB card
    assert rows["H200"].fits
    with pytest.raises(ValueError, match="regen-rate"):
        Workload(pipeline_get("wan-14b"), 720, 1280, 81, regen_rate=1.0)


def test_a_short_soak_reports_throughput_and_says_when_nvml_is_absent():
    from inference.soak import soak

    result = soak(RunOptions(steps=4), minutes=0.05)
    assert result["clips"] >= 1
    assert result["sustained_steps_per_s"] > 0
    assert result["sustained_vs_first_minute"] == pytest.approx(1.0)  # all within the first minute
    assert result["nvml"] is None
    assert "NVML not available" in result["nvml_note"]
    assert len(result["timeline"]) == result["clips"]
    with pytest.raises(ValueError, match="minutes"):
        soak(RunOptions(), minutes=0)


def test_run_compares_a_cached_clip_with_the_uncached_one(tmp_path, capsys):
    code = main([
        "run", "--seed", "5", "--cache", "teacache:0.05", "--compare-uncached", "--out", str(tmp_path),
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    comparison = json.loads((tmp_path / "report.json").read_text())["cache_comparison"]
    assert comparison["uncached_forwards_run"] == 60
    assert comparison["forwards_speedup"] > 1
    assert 0 <= comparison["pixel_mae"] < 0.05
    assert set(comparison["quality_delta"]) == {
        "flicker",
        "ssim",
        "trajectory_error",
        "quality_score",
    }
    assert main(["run", "--compare-uncached"]) == 2
    assert "--compare-uncached needs --cache" in capsys.readouterr().err
