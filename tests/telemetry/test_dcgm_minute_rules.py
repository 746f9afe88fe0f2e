"""Minute rollups computed inside Prometheus: the recording rules of
deploy/prometheus/frameops-minute-rules.yml pass their hand-worked promtool tests, and on a
real Prometheus the minutes the minutes pull reads equal what the raw pull gives once the
server rolls it up, Kubernetes attribution included."""

from __future__ import annotations

import io
import math
import random
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from collectors.dcgm_minutes import RULE_DELAY_S, minute_of, minutes_from_recorded
from finops.alerts.prometheus_rules import minute_rules_yaml
from finops.fleet.models import Gpu
from finops.jobs.kubernetes import pod_presences_attribute
from finops.jobs.models import KubernetesMapping, RenderJob
from finops.telemetry.dcgm_pull import dcgm_minutes_pull, dcgm_pull
from finops.telemetry.models import GpuHour, GpuMinute, GpuSample, PullWatermark
from finops.telemetry.rollups import ROLLUP_COLUMNS, rollups_recompute

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = DEPLOY / "frameops-minute-rules.yml"
VALUE_COLUMNS = [c for c in ROLLUP_COLUMNS if c not in ("gpu_id", "ts", "samples")]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool (Debian's prometheus package) is required: `make test` installs it")
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120, check=False)  # noqa: S603


def test_the_committed_minute_rules_are_the_exported_ones(tmp_path):
    out = io.StringIO()
    call_command("export_prometheus_rules", "--minutes", "--output", "-", stdout=out)
    assert out.getvalue() == minute_rules_yaml() == RULES.read_text(), (
        "deploy/prometheus/frameops-minute-rules.yml is stale: "
        "run manage.py export_prometheus_rules --minutes"
    )


def test_promtool_checks_and_unit_tests_the_minute_rules():
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 22 rules found" in checked.stdout
    tested = _promtool("test", "rules", str(DEPLOY / "frameops-minute-rules.test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_recorded_minutes_name_what_cannot_be_read():
    labels = {"UUID": "GPU-x", "gpu": "0", "Hostname": "h"}
    t = 1_749_999_960.0  # a whole minute (2025-06-15)
    read = minutes_from_recorded([
        {"metric": {**labels, "__name__": "frameops:gpu_covered_s:1m"}, "values": [[t, "60"]]},
        {"metric": {**labels, "__name__": "frameops:gpu_busy_s:1m"}, "values": [[t, "junk"]]},
        {"metric": {**labels, "__name__": "frameops:gpu_util_mean_pct:1m"},
         "values": [[t, "NaN"], [t + 60, "140"]]},
        {"metric": {**labels, "__name__": "frameops:gpu_covered_s:1m"}, "values": [[t + 60, "60"]]},
        {"metric": {"__name__": "frameops:gpu_covered_s:1m"}, "values": [[t, "60"]]},
        {"metric": {**labels, "__name__": "frameops:gpu_util_mean_pct:1m"}, "values": [[t + 120, "5"]]},
        {"metric": {**labels, "__name__": "unrelated"}, "values": [[t, "1"]]},
    ])  # fmt: skip
    (minute,) = read.minutes
    assert minute.ts == datetime.fromtimestamp(t - RULE_DELAY_S, tz=UTC)
    assert (minute.covered_s, minute.busy_s, minute.util_mean_pct) == (60.0, 0.0, None)
    assert read.skipped == 3
    assert read.problems[0] == f"frameops:gpu_busy_s:1m@{t} value 'junk' is not a number"
    assert "has no UUID label" in read.problems[1]
    assert "util_mean_pct" in read.problems[2] and "140" in read.problems[2]
    assert minute_of(t + 59.9) == minute_of(t) == t - 120


# --- Against a real Prometheus -------------------------------------------------------------

STEP = 15
MINUTES = 40
GPU = 'gpu="{i}",UUID="GPU-r{i}",Hostname="rules-node",modelName="NVIDIA H100 80GB HBM3"'
MIG = 'gpu="3",UUID="GPU-r3",GPU_I_ID="2",GPU_I_PROFILE="3g.40gb",Hostname="rules-node"'
POD = 'namespace="render",pod="job-a",container="wan"'


def _series(t0: float) -> str:
    """Forty minutes at 15 s of three GPUs and a MIG instance, values drawn at random:
    idle steps, memory near the pressure line, throttle and energy counters that restart.
    GPU 0 is held by the pod render/job-a throughout."""
    rng = random.Random(23)  # noqa: S311  (test data, not secrets)
    families: dict[str, list[str]] = {}
    steps = MINUTES * 60 // STEP

    def put(name: str, labels: str, values: list[float]) -> None:
        lines = families.setdefault(name, [])
        lines += [f"{name}{{{labels}}} {v:.10g} {t0 + STEP * k:.3f}" for k, v in enumerate(values)]

    def counter(per_step: list[float], restart_at: int | None) -> list[float]:
        out, total = [], 0.0
        for k, increase in enumerate(per_step):
            total = increase if k == restart_at else total + increase
            out.append(total)
        return out

    for i in range(3):
        labels = GPU.format(i=i) + ("," + POD if i == 0 else "")
        util = [rng.choice([0, 0, rng.randint(1, 100)]) for _ in range(steps)]
        used = [rng.randint(60_000, 80_500) for _ in range(steps)]
        put("DCGM_FI_DEV_GPU_UTIL", labels, util)
        put("DCGM_FI_DEV_FB_USED", labels, used)
        put("DCGM_FI_DEV_FB_FREE", labels, [81_559 - u for u in used])
        put("DCGM_FI_DEV_POWER_USAGE", labels, [round(rng.uniform(80, 700), 2) for _ in util])
        put("DCGM_FI_DEV_GPU_TEMP", labels, [rng.randint(35, 88) for _ in util])
        put("DCGM_FI_DEV_SM_CLOCK", labels, [rng.randint(900, 1980) for _ in util])
        put("DCGM_FI_DEV_MAX_SM_CLOCK", labels, [1980] * steps)
        put("DCGM_FI_PROF_PCIE_TX_BYTES", labels, [rng.randint(0, 10**9) for _ in util])
        put("DCGM_FI_PROF_PCIE_RX_BYTES", labels, [rng.randint(0, 10**9) for _ in util])
        put(
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
            labels,
            counter([rng.randint(1_000_000, 10_000_000) for _ in util], 50 if i == 1 else None),
        )
        put(
            "DCGM_FI_DEV_POWER_VIOLATION",
            labels,
            counter(
                [rng.choice([0, rng.randint(0, 15_000_000)]) for _ in util], 70 if i == 2 else None
            ),
        )
        put("DCGM_FI_DEV_THERMAL_VIOLATION", labels,
            counter([rng.choice([0, 0, 15_000_000]) for _ in util], None))  # fmt: skip
    active = [round(rng.uniform(0, 1), 4) for _ in range(steps)]
    put("DCGM_FI_PROF_GR_ENGINE_ACTIVE", MIG, active)
    put("DCGM_FI_DEV_FB_USED", MIG, [20_000] * steps)
    put("DCGM_FI_DEV_FB_FREE", MIG, [20_448] * steps)
    lines = []
    for name, samples in families.items():
        lines += [f"# TYPE {name} gauge", *samples]
    return "\n".join([*lines, "# EOF"]) + "\n"


def _minutes(start: datetime, end: datetime) -> dict[tuple[str, datetime], dict[str, Any]]:
    rows = GpuMinute.objects.filter(ts__gte=start, ts__lt=end).select_related("gpu")
    return {(m.gpu.uuid, m.ts): {c: getattr(m, c) for c in ("samples", *VALUE_COLUMNS)}
            for m in rows}  # fmt: skip


def _held(job_id: str) -> list[tuple[datetime, datetime]]:
    job = RenderJob.objects.get(source="k8s", external_id=job_id)
    return [(a.start, a.end) for a in job.allocations.order_by("start")]


@pytest.mark.django_db
def test_pulled_minutes_equal_the_rolled_up_raw_series(history, settings, tmp_path, team_a):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=3)
    end = start + timedelta(minutes=MINUTES)
    url = history(_series(start.timestamp()))
    KubernetesMapping.objects.create(namespace="render", team=team_a, project="trailer")
    settings.DCGM_PULL_LOOKBACK_S = 4 * 3600

    # Raw: dcgm-exporter's series at 15 s, rolled up here.
    raw = dcgm_pull(url=url, now=end + timedelta(minutes=1), step_s=STEP, mode="samples")
    assert raw["registered_gpus"] == 4 and raw["rejected"] == 0
    pod_presences_attribute()
    rollups_recompute(start=start, end=end + timedelta(minutes=10))
    # The first and last minutes see the edges of the series (and Prometheus' look-back
    # after its end): compare those that lie within it.
    inner = (start + timedelta(minutes=2), end - timedelta(minutes=2))
    expected = _minutes(*inner)
    assert len(expected) == 4 * (MINUTES - 4)
    raw_held = _held("render/job-a")
    assert raw_held == [(start, end)]

    # Recorded: the rules evaluated over the same series (as Prometheus would have every
    # minute), then read back as minutes.
    blocks = tmp_path / "rule-blocks"
    made = _promtool(
        "tsdb", "create-blocks-from", "rules", "-q", f"--url={url}",
        f"--start={int(start.timestamp())}", f"--end={int((end + timedelta(minutes=10)).timestamp())}",
        f"--output-dir={blocks}", str(RULES),
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    url = history.add_blocks(blocks)
    for model in (GpuMinute, GpuHour, GpuSample, PullWatermark, RenderJob, Gpu):
        model.objects.all().delete()

    pulled = dcgm_minutes_pull(url=url, now=end + timedelta(minutes=10))
    assert pulled["rejected"] == 0 and pulled["skipped_points"] == 0, pulled
    assert pulled["registered_gpus"] == 4 and pulled["pod_runs"] > 0
    assert pod_presences_attribute().jobs == 1
    got = _minutes(*inner)
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        assert got[key]["samples"] == 4, key  # scrapes, not the raw pull's throttle pieces
        for column in VALUE_COLUMNS:
            a, b = got[key][column], want[column]
            if b is None:
                assert a is None, (key, column, a)
            else:
                assert a is not None and math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (
                    key, column, a, b,
                )  # fmt: skip
    assert GpuMinute.objects.filter(from_edge=False).count() == 0
    assert GpuHour.objects.filter(ts=start).exists()  # hours follow the pulled minutes
    assert _held("render/job-a") == raw_held

    # Read again from the watermark: nothing new, nothing twice.
    again = dcgm_minutes_pull(url=url, now=end + timedelta(minutes=10))
    assert again["minutes"] == 0
    assert GpuMinute.objects.filter(ts__gte=inner[0], ts__lt=inner[1]).count() == len(expected)
