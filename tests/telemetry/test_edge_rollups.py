"""The agent's minute rollups (``collectors.rollups``, numpy) equal the server's SQL
rollups (``finops.telemetry.rollups``): over every hand-computed case of
``rollup_cases.py``, and over random irregular series with gaps, counter resets, missing
measurements and samples that arrive late (out of order), within 1e-9 relative. The hand
cases run on PostgreSQL and on SQLite (the embedded demo); the property on PostgreSQL."""

from __future__ import annotations

import math
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from collectors.records import GpuSample as Record
from collectors.records import RecordError, gpu_sample_from_mapping
from collectors.rollups import MAX_SAMPLE_GAP_S, gpu_minutes
from finops.fleet.models import Gpu, Node, Site
from finops.telemetry.models import GpuMinute, GpuSample
from finops.telemetry.rollups import ROLLUP_COLUMNS, rollups_recompute
from tests.telemetry import rollup_cases

FIELDS = [c for c in ROLLUP_COLUMNS if c not in ("gpu_id", "ts")]
SAMPLE_FIELDS = ("sm_util_pct", "mem_used_bytes", "mem_total_bytes", "power_w", "temp_c",
                 "sm_clock_mhz", "sm_clock_max_mhz", "clocks_event_reasons",
                 "pcie_tx_bytes_per_s", "pcie_rx_bytes_per_s", "energy_mj")  # fmt: skip
VRAM = 80 * 2**30


def _records(gpu: Gpu) -> list[Record]:
    return [
        Record(gpu_uuid=gpu.uuid, ts=row["ts"], **{f: row[f] for f in SAMPLE_FIELDS})
        for row in GpuSample.objects.filter(gpu=gpu).order_by("ts").values("ts", *SAMPLE_FIELDS)
    ]


def _edge(gpu: Gpu, start: datetime, end: datetime) -> dict[datetime, dict[str, object]]:
    records = _records(gpu)
    context_end = end + timedelta(seconds=MAX_SAMPLE_GAP_S)
    after = next((r for r in records if r.ts >= context_end), None)
    minutes = gpu_minutes(records, start=start, end=end, vram_bytes=gpu.vram_bytes,
                          pressure_fraction=settings.TELEMETRY_MEMORY_PRESSURE_FRACTION,
                          after=after)  # fmt: skip
    return {m.ts: {f: asdict(m)[f] for f in FIELDS} for m in minutes}


def _server(gpu: Gpu, start: datetime, end: datetime) -> dict[datetime, dict[str, object]]:
    rows = GpuMinute.objects.filter(gpu=gpu, ts__gte=start, ts__lt=end).values("ts", *FIELDS)
    return {row.pop("ts"): row for row in rows}


def _differences(edge: dict, server: dict) -> list[str]:  # type: ignore[type-arg]
    out = []
    for ts in sorted(set(edge) | set(server)):
        if ts not in edge or ts not in server:
            out.append(f"{ts:%H:%M:%S}: only on the {'edge' if ts in edge else 'server'}")
            continue
        for f in FIELDS:
            a, b = edge[ts][f], server[ts][f]
            if a is None or b is None:
                if a is not b:
                    out.append(f"{ts:%H:%M} {f}: edge {a} server {b}")
            elif not math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9):
                out.append(f"{ts:%H:%M} {f}: edge {a} server {b}")
    return out


def cases_edge_differences() -> list[str]:
    """Run every hand-computed case, recompute their day on the server, and list where the
    edge's minutes differ from the server's (empty: equal). Runs on either database."""
    rollup_cases.cases_run()
    day = rollup_cases.T0.replace(hour=0)
    rollups_recompute(start=day, end=day + timedelta(days=1))
    gpus = list(Gpu.objects.all())
    out = [] if len(gpus) >= 5 else ["fewer than 5 cases ran"]
    for gpu in gpus:
        server = _server(gpu, day, day + timedelta(days=1))
        if not server:
            out.append(f"{gpu.uuid}: no minutes on the server")
        out += [
            f"{gpu.uuid} {d}"
            for d in _differences(_edge(gpu, day, day + timedelta(days=1)), server)
        ]
    return out


@pytest.mark.django_db
def test_every_hand_computed_case_rolls_up_the_same_at_the_edge():
    assert cases_edge_differences() == []


def test_every_hand_computed_case_rolls_up_the_same_at_the_edge_on_sqlite(tmp_path):
    from tests.sqlite_demo import run_on_sqlite

    script = (
        "import json\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
        "from tests.telemetry.test_edge_rollups import cases_edge_differences\n"
        "print(json.dumps(cases_edge_differences()))\n"
    )
    assert run_on_sqlite(script, tmp_path) == []


T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
maybe = st.one_of(st.none(), st.floats(0, 100, allow_nan=False))


@st.composite
def series(draw):  # type: ignore[no-untyped-def]
    """Samples at irregular times (sub-second to past the cap), each measurement sometimes
    missing, memory near the pressure line, throttle bits, an energy counter that resets."""
    n = draw(st.integers(1, 60))
    t, energy, out = 0.0, 10**9, []
    for _ in range(n):
        t += draw(st.sampled_from([0.25, 0.5, 1, 1, 1, 2.5, 5, 15, 30, 59.5, 60, 61, 95, 180]))
        energy = 0 if draw(st.integers(0, 30)) == 0 else energy + draw(st.integers(0, 800_000))
        used = draw(st.one_of(st.none(), st.integers(int(VRAM * 0.85), VRAM)))
        clock_max = draw(st.sampled_from([None, 0, 1980]))
        out.append((t, {
            "sm_util_pct": draw(maybe), "mem_used_bytes": used,
            "mem_total_bytes": draw(st.sampled_from([None, VRAM])),
            "power_w": draw(st.one_of(st.none(), st.floats(50, 700))),
            "temp_c": draw(st.one_of(st.none(), st.floats(30, 90))),
            "sm_clock_mhz": draw(st.one_of(st.none(), st.integers(200, 1980))),
            "sm_clock_max_mhz": clock_max,
            "clocks_event_reasons": draw(st.sampled_from([None, 0, 0x4, 0x20, 0x48, 0xFF])),
            "pcie_tx_bytes_per_s": draw(st.one_of(st.none(), st.floats(0, 1e10))),
            "pcie_rx_bytes_per_s": draw(st.one_of(st.none(), st.floats(0, 1e10))),
            "energy_mj": draw(st.one_of(st.none(), st.just(energy))),
        }))  # fmt: skip
    return out


@pytest.mark.django_db
@given(samples=series(), window=st.tuples(st.integers(-3, 40), st.integers(1, 45)),
       late=st.integers(0, 5))  # fmt: skip
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])  # fmt: skip
def test_random_series_roll_up_the_same_at_the_edge(samples, window, late):
    GpuSample.objects.all().delete()
    GpuMinute.objects.all().delete()
    site, _ = Site.objects.get_or_create(slug="lab", defaults={"provider": "on-prem"})
    node, _ = Node.objects.get_or_create(site=site, hostname="prop-1")
    gpu, _ = Gpu.objects.get_or_create(
        node=node, uuid="GPU-prop", defaults={"index": 0, "vram_bytes": VRAM}
    )
    rows = []
    for t, values in samples:  # through the ingest validation, as an agent's samples come
        try:
            record = gpu_sample_from_mapping(
                {"gpu_uuid": gpu.uuid, "ts": T0 + timedelta(seconds=t),
                 **{k: v for k, v in values.items() if v is not None}},
                now=T0 + timedelta(days=1),
            )  # fmt: skip
        except RecordError:
            continue  # a sample with no measurement at all is refused at ingest
        fields = {k: getattr(record, k) for k in SAMPLE_FIELDS}
        rows.append(GpuSample(gpu=gpu, ts=record.ts, **fields))
    # Late samples: the last few stored first, as a replayed spool delivers them.
    rows = rows[-late:] + rows[:-late] if late and late < len(rows) else rows
    for row in rows:
        GpuSample.objects.bulk_create([row])
    start = T0 + timedelta(minutes=window[0])
    end = start + timedelta(minutes=window[1])
    rollups_recompute(start=start, end=end, workers=1)
    assert _differences(_edge(gpu, start, end), _server(gpu, start, end)) == []
