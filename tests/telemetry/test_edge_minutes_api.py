"""POST /api/v1/ingest/gpu-minutes: minutes an agent rolled up itself. They equal what the
server makes of the same raw samples, a minute sent again replaces the first and its hour
follows, bad lines are named and rejected alone, and the server's own rollup of raw
samples never deletes them."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from collectors.records import GpuSample as Record
from collectors.rollups import gpu_minutes
from finops.telemetry.models import GpuHour, GpuMinute
from finops.telemetry.rollups import ROLLUP_COLUMNS, rollups_recompute

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
VRAM = 85520809984
FIELDS = [c for c in ROLLUP_COLUMNS if c not in ("gpu_id", "ts")]


@pytest.fixture
def agent(api, make_key, team_a):  # type: ignore[no-untyped-def]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('ingest:write')}")
    node = {"hostname": "gpu-e1", "site": "lab", "provider": "on-prem",
            "gpus": [{"uuid": f"GPU-{name}", "index": i, "model": "NVIDIA H100 80GB HBM3",
                      "mem_total_bytes": VRAM} for i, name in enumerate(("raw", "edge"))]}  # fmt: skip
    assert api.post("/api/v1/nodes", node, format="json").status_code == 201
    return api


def _post(api, path: str, lines: list[object]):  # type: ignore[no-untyped-def]
    body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return api.generic("POST", path, body, content_type="application/x-ndjson")


def _series(uuid: str) -> list[Record]:
    """Ten minutes of irregular samples: 1 s, then 15 s, a 2-minute gap, a counter reset."""
    out, t, energy = [], 5.0, 10**9
    while t < 600:
        energy = 1000 if 300 <= t < 302 else energy + (400_000 * (1 if t < 120 else 15))
        out.append(Record(gpu_uuid=uuid, ts=T0 + timedelta(seconds=t), sm_util_pct=float(int(t) % 97),
                          mem_used_bytes=int(VRAM * (0.9 + (int(t) % 7) / 100)), mem_total_bytes=VRAM,
                          power_w=300.0 + t % 50, sm_clock_mhz=1500, sm_clock_max_mhz=1980,
                          clocks_event_reasons=0x4 if int(t) % 3 == 0 else 0, energy_mj=energy,
                          pcie_tx_bytes_per_s=1e6 * (t % 5)))  # fmt: skip
        t += 1 if t < 120 else (15 if not 200 <= t < 320 else 120)
    return out


def _rows(model, uuid: str) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    rows = model.objects.filter(gpu__uuid=uuid).order_by("ts").values("ts", *FIELDS)
    return {f"{r.pop('ts'):%H:%M}": r for r in rows}


def _same(a: dict, b: dict) -> None:  # type: ignore[type-arg]
    assert a.keys() == b.keys()
    for key in a:
        for f in FIELDS:
            x, y = a[key][f], b[key][f]
            assert (x is None) == (y is None), (key, f, x, y)
            if x is not None:
                assert math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9), (key, f, x, y)


def test_edge_minutes_equal_the_servers_rollup_of_the_same_samples(agent, settings):
    raw = _series("GPU-raw")
    sent = _post(agent, "/api/v1/ingest/gpu-samples", [r.as_json() for r in raw])
    assert sent.status_code == 200 and sent.json()["accepted"] == len(raw)
    rollups_recompute(start=T0, end=T0 + timedelta(hours=1))
    minutes = gpu_minutes(_series("GPU-edge"), start=T0, end=T0 + timedelta(hours=1),
                          pressure_fraction=settings.TELEMETRY_MEMORY_PRESSURE_FRACTION)  # fmt: skip
    answer = _post(agent, "/api/v1/ingest/gpu-minutes", [m.as_json() for m in minutes])
    assert answer.status_code == 200, answer.content
    assert answer.json()["accepted"] == len(minutes) == len(_rows(GpuMinute, "GPU-raw"))
    _same(_rows(GpuMinute, "GPU-raw"), _rows(GpuMinute, "GPU-edge"))
    _same(_rows(GpuHour, "GPU-raw"), _rows(GpuHour, "GPU-edge"))
    # The server's own rollup of raw samples, run again, leaves the edge minutes alone.
    rollups_recompute(start=T0, end=T0 + timedelta(hours=1))
    assert len(_rows(GpuMinute, "GPU-edge")) == len(minutes)


def test_a_minute_sent_again_replaces_the_first_and_its_hour_follows(agent):
    first = {"gpu_uuid": "GPU-edge", "ts": "2026-11-02T10:05:00Z", "samples": 60, "covered_s": 60,
             "busy_s": 60, "util_mean_pct": 50.0, "util_s": 60, "energy_j": 18000.0}  # fmt: skip
    assert _post(agent, "/api/v1/ingest/gpu-minutes", [first]).json()["accepted"] == 1
    corrected = {**first, "busy_s": 30, "util_mean_pct": 25.0, "energy_j": 9000.0}
    assert _post(agent, "/api/v1/ingest/gpu-minutes", [corrected]).json()["accepted"] == 1
    (minute,) = GpuMinute.objects.filter(gpu__uuid="GPU-edge")
    assert (minute.busy_s, minute.util_mean_pct, minute.energy_j) == (30, 25.0, 9000.0)
    (hour,) = GpuHour.objects.filter(gpu__uuid="GPU-edge")
    assert (hour.busy_s, hour.energy_j, hour.ts) == (30, 9000.0, T0)


@pytest.mark.parametrize(
    ("bad", "field", "text"),
    [
        ({"ts": "2026-11-02T10:05:30Z"}, "ts", "not the start of a minute"),
        ({"busy_s": 61}, "busy_s", "out of range"),
        ({"busy_s": 50, "covered_s": 40}, "busy_s", "exceeds covered_s"),
        ({"util_mean_pct": float("nan")}, "util_mean_pct", "not a finite number"),
        ({"mem_frac_mean": 1.5}, "mem_frac_mean", "out of range"),
        ({"covered_s": None}, "covered_s", "is required"),
        ({"gpu_uuid": "GPU-nobody"}, "gpu_uuid", "unknown GPU"),
        ({"watts": 3}, "watts", "unknown field"),
        ({"samples": -1}, "samples", "out of range"),
    ],
)  # fmt: skip
def test_bad_minutes_are_named_and_rejected_alone(agent, bad, field, text):
    good = {"gpu_uuid": "GPU-edge", "ts": "2026-11-02T10:01:00Z", "samples": 10, "covered_s": 60}
    line = json.dumps({**good, "ts": "2026-11-02T10:05:00Z", **bad}).replace("NaN", "NaN")
    answer = _post(agent, "/api/v1/ingest/gpu-minutes", [good, line])
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    (error,) = body["errors"]
    assert (error["line"], error["field"]) == (2, field) and text in error["message"]
    assert GpuMinute.objects.filter(gpu__uuid="GPU-edge").count() == 1  # the good line kept


def test_the_upsert_writes_every_rollup_column():
    from finops.telemetry.writes import GPU_MINUTE_COLUMNS

    assert (*ROLLUP_COLUMNS, "from_edge") == GPU_MINUTE_COLUMNS
