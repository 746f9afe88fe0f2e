"""The simulator's bulk telemetry: the minutes it writes for a GPU's readings are the ones
the rollup rules give for the same readings sent as raw samples, and the column store
writes exactly what the row store does, hours included, or refuses a bad column whole."""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.conf import settings

from collectors.rollups import GpuMinute as EdgeMinute
from collectors.rollups import gpu_minutes
from finops.fleet.models import Gpu
from finops.fleet.services import GpuRegistration, node_register
from finops.simulation.studio import Readings, simulated_minutes
from finops.telemetry.ingest import IngestResult, gpu_minute_columns_store, gpu_minutes_store
from finops.telemetry.models import GpuHour, GpuMinute
from finops.telemetry.rollups import ROLLUP_COLUMNS

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
VRAM = 80 * 2**30
N = 150  # two and a half hours: a partial hour at the end
VALUES = [c for c in ROLLUP_COLUMNS if c not in ("gpu_id", "ts")]


def _readings(seed: int, *, n: int = N) -> Readings:
    rng = np.random.default_rng(seed)
    busy = rng.random(n) < 0.7
    util = np.where(busy, rng.uniform(10, 99, n), 0.0)
    mem = np.where(rng.random(n) < 0.2, 0.96, np.where(busy, 0.6, 0.02))
    power = np.round(rng.uniform(90, 700, n), 1)
    return Readings(
        util=util,
        mem_used=(VRAM * mem).astype(np.int64),
        vram=VRAM,
        power=power,
        clock_mhz=rng.choice([1980, 1500, 1200], n).astype(np.int64),
        clock_max_mhz=1980,
        reasons=rng.choice([0, 0x4, 0x20, 0x24, 0x8, 0x40, 0x80], n).astype(np.int64),
        energy_mj=10**9 + np.concatenate(([0], np.cumsum((power * 60_000).astype(np.int64))[:-1])),
    )


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None or (isinstance(a, float) and math.isnan(a)):
        return (a is None or math.isnan(a)) and (b is None or math.isnan(b))
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)


@pytest.mark.parametrize("last", [True, False])
def test_simulated_minutes_equal_the_rollup_rules_over_the_same_samples(last):
    readings = _readings(seed=3)
    samples = readings.samples("GPU-sim", T0)
    end = T0 + timedelta(minutes=N)
    # Not the series' last chunk: the next chunk's first reading measures the final minute.
    after = None
    if not last:
        following = _readings(seed=4, n=1)
        following.energy_mj[0] = readings.energy_mj[-1] + int(readings.power[-1] * 60_000)
        after = following.samples("GPU-sim", end)[0]
    edge = gpu_minutes(samples, start=T0, end=end, vram_bytes=VRAM, after=after,
                       pressure_fraction=settings.TELEMETRY_MEMORY_PRESSURE_FRACTION)  # fmt: skip
    ours = simulated_minutes(readings, gpu_id=1, start_s=int(T0.timestamp()), last=last)
    assert len(edge) == N
    for i, minute in enumerate(edge):
        assert int(ours["ts"][i]) == int(minute.ts.timestamp())
        for f in fields(EdgeMinute):
            if f.name in ("gpu_uuid", "ts"):
                continue
            got = float(ours[f.name][i])
            assert _close(got, getattr(minute, f.name)), (i, f.name, got, getattr(minute, f.name))
    assert bool(np.isnan(ours["energy_j"][-1])) is last


@pytest.fixture
def two_gpus(db):  # type: ignore[no-untyped-def]
    node_register(hostname="sim-bulk-1", site="lab", provider="on-prem", gpus=[
        GpuRegistration(uuid=f"GPU-bulk-{i}", index=i, model="NVIDIA H100 80GB HBM3",
                        mem_total_bytes=VRAM) for i in range(2)])  # fmt: skip
    return list(Gpu.objects.filter(uuid__startswith="GPU-bulk-").order_by("uuid"))


def _columns(gpus: list[Gpu]) -> dict[str, np.ndarray]:
    parts = [simulated_minutes(_readings(seed=i), gpu_id=g.id, start_s=int(T0.timestamp()),
                               last=True) for i, g in enumerate(gpus)]  # fmt: skip
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _stored() -> tuple[list[tuple], list[tuple]]:  # type: ignore[type-arg]
    minutes = list(GpuMinute.objects.order_by("gpu_id", "ts").values_list("gpu_id", "ts", *VALUES,
                                                                         "from_edge"))  # fmt: skip
    hours = list(GpuHour.objects.order_by("gpu_id", "ts").values_list("gpu_id", "ts", *VALUES))
    return minutes, hours


def _same(a: list[tuple], b: list[tuple]) -> bool:  # type: ignore[type-arg]
    return len(a) == len(b) and all(
        x[:2] == y[:2] and all(_close(u, v) if isinstance(u, float) or isinstance(v, float)
                               else u == v for u, v in zip(x[2:], y[2:], strict=True))
        for x, y in zip(a, b, strict=True)
    )  # fmt: skip


def test_the_column_store_writes_what_the_row_store_writes(two_gpus):
    columns = _columns(two_gpus)
    Gpu.objects.update(last_seen_at=None)
    assert gpu_minute_columns_store(columns) == 2 * N
    seen = Gpu.objects.get(pk=two_gpus[0].pk).last_seen_at
    assert seen == T0 + timedelta(minutes=N - 1, seconds=59)
    by_columns = _stored()
    assert len(by_columns[0]) == 2 * N and len(by_columns[1]) == 2 * 3  # three hours each

    GpuMinute.objects.all().delete()
    GpuHour.objects.all().delete()
    uuids = {g.id: g.uuid for g in two_gpus}
    records = []
    for i in range(2 * N):
        values = {c: float(columns[c][i]) for c in VALUES}
        values = {k: (None if v != v else v) for k, v in values.items()}
        values["samples"] = int(values["samples"])
        records.append((i + 1, EdgeMinute(gpu_uuid=uuids[int(columns["gpu_id"][i])],
                                          ts=datetime.fromtimestamp(int(columns["ts"][i]), tz=UTC),
                                          **values)))  # fmt: skip
    result = gpu_minutes_store(records=records, result=IngestResult())
    assert result.accepted == 2 * N
    by_rows = _stored()
    assert _same(by_columns[0], by_rows[0]) and _same(by_columns[1], by_rows[1])
    # Sent again: replaced, not doubled.
    gpu_minute_columns_store(columns)
    assert GpuMinute.objects.count() == 2 * N


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.pop("busy_s"), "minute columns missing: busy_s"),
        (lambda c: c["busy_s"].__setitem__(7, np.nan), "busy_s: row 7 must be between 0 and 60"),
        (lambda c: c["util_mean_pct"].__setitem__(3, 101.0), "util_mean_pct: row 3 must be"),
        (
            lambda c: c["ts"].__setitem__(5, c["ts"][5] + 1),
            "ts: row 5 is not the start of a minute",
        ),
        (lambda c: c["gpu_id"].__setitem__(9, 10**9), "gpu_id: row 9 is not a registered GPU"),
        (lambda c: c["busy_s"].__setitem__(2, 61.0), "busy_s: row 2 must be between 0 and 60"),
        (lambda c: c.__setitem__("covered_s", np.full(2 * N, 30.0)), "exceeds covered_s"),
        (lambda c: c.__setitem__("power_s", c["power_s"][:-1]), "power_s: 299 values"),
    ],
)
def test_a_bad_column_is_named_and_nothing_is_written(two_gpus, change, message):
    columns = _columns(two_gpus)
    change(columns)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        gpu_minute_columns_store(columns)
    assert GpuMinute.objects.count() == 0 and GpuHour.objects.count() == 0
