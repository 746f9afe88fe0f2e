"""Alerts, the ledger's usage basis and the detectors give the same results whether a
GPU's minutes were rolled up here from raw samples or computed on the host and sent as
minutes: a simulated day of 64 GPUs with every fault, costed and checked both ways."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from collectors.records import GpuSample as Sample
from collectors.rollups import MAX_SAMPLE_GAP_S, gpu_minutes
from finops.alerts.defaults import DEFAULT_RULES
from finops.alerts.evaluation import rules_evaluate
from finops.alerts.models import Alert, AlertRule
from finops.costing.engine import ledger_recompute
from finops.costing.models import LedgerEntry
from finops.fleet.models import Gpu
from finops.insights.services import drafts_detect
from finops.simulation.studio import studio_simulate
from finops.telemetry.ingest import IngestResult, gpu_minutes_store
from finops.telemetry.models import GpuHour, GpuMinute, GpuSample

pytestmark = pytest.mark.django_db
SAMPLE_FIELDS = ("sm_util_pct", "mem_used_bytes", "mem_total_bytes", "power_w", "temp_c",
                 "sm_clock_mhz", "sm_clock_max_mhz", "clocks_event_reasons",
                 "pcie_tx_bytes_per_s", "pcie_rx_bytes_per_s", "energy_mj")  # fmt: skip


def _results(start, end) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """What a person sees: alerts fired over the last half hour's ticks, the ledger's lines on
    both bases, and every finding with its evidence and waste."""
    ledger_recompute(start=start, end=end)
    Alert.objects.all().delete()
    fired = []
    for m in range(30):
        report = rules_evaluate(now=end - timedelta(minutes=29 - m))
        fired += sorted((m, a.rule.name, a.dedup_key)
                        for a in Alert.objects.filter(pk__in=report.fired))  # fmt: skip
    ledger = sorted(
        LedgerEntry.objects.values_list(
            "window_start", "bucket", "team_id", "job_id", "gpu_id", "component", "amount",
            "activity",
        ),
        key=str,
    )  # fmt: skip
    _, drafts = drafts_detect(start=start, end=end)
    findings = sorted(
        (d.pattern, d.scope_kind, d.scope_key, d.team_id, _settled(d.waste),
         _settled(d.scope_cost), str(_settled(d.evidence)))
        for d in drafts
    )  # fmt: skip
    return {"alerts": fired, "ledger": ledger, "findings": findings}


def _settled(value: Any) -> Any:
    """A finding's figures as shown: money to the millionth, other numbers to nine significant
    digits (detectors sum float rollups in pandas, whose last bits follow the row order the
    database returned, which differs from one read to the next)."""
    if isinstance(value, dict):
        return {k: _settled(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_settled(v) for v in value]
    if isinstance(value, Decimal):
        return value.quantize(Decimal("0.000001"))
    if isinstance(value, float):
        return float(f"{value:.9g}")
    return value


def _edge_minutes(start, end) -> list[tuple[int, Any]]:  # type: ignore[no-untyped-def]
    """Each GPU's minutes as its host agent computes them from the same samples."""
    out: list[tuple[int, Any]] = []
    cap = timedelta(seconds=MAX_SAMPLE_GAP_S)
    for gpu in Gpu.objects.select_related("model"):
        rows = GpuSample.objects.filter(gpu=gpu, ts__gte=start - 2 * cap).order_by("ts")
        samples = [
            Sample(gpu_uuid=gpu.uuid, ts=r.ts, **{f: getattr(r, f) for f in SAMPLE_FIELDS})
            for r in rows
        ]
        minutes = gpu_minutes(
            samples, start=start, end=end, vram_bytes=gpu.vram_bytes,
            pressure_fraction=settings.TELEMETRY_MEMORY_PRESSURE_FRACTION,
        )  # fmt: skip
        out += [(len(out) + i + 1, m) for i, m in enumerate(minutes)]
    return out


def test_alerts_usage_basis_and_detectors_match_on_edge_minutes(team_a):
    for rule in DEFAULT_RULES:
        values = dict(rule)
        AlertRule.objects.update_or_create(name=values.pop("name"), defaults=values)
    end = (timezone.now() - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    studio_simulate(days=1, gpus=64, seed=11, end=end, telemetry="samples")
    start = end - timedelta(days=1)
    raw = _results(start, end)
    assert raw["alerts"] and raw["findings"]  # the faults show, so the comparison means something
    assert any(line[7] != Decimal(1) for line in raw["ledger"])  # usage basis differs somewhere

    edge = _edge_minutes(start, end)
    minutes_before = GpuMinute.objects.count()
    GpuMinute.objects.all().delete()
    GpuHour.objects.all().delete()
    GpuSample.objects.all().delete()
    stored = gpu_minutes_store(records=edge, result=IngestResult())
    assert stored.rejected == 0 and stored.accepted == len(edge) == minutes_before
    assert GpuMinute.objects.filter(from_edge=False).count() == 0

    assert _results(start, end) == raw
