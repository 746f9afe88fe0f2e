"""The idle-held rule: memory held with no SM activity fires after 30 minutes, a short
pause between steps never does, and it resolves only under half of the window (hysteresis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from finops.alerts.defaults import DEFAULT_RULES
from finops.alerts.evaluation import rules_evaluate
from finops.alerts.models import Alert, AlertRule, AlertState
from finops.fleet.models import Gpu, Node, Site
from finops.telemetry.models import GpuMinute

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)


def minute(gpu: Gpu, m: int, *, busy: bool, mem: float) -> None:
    GpuMinute.objects.update_or_create(
        gpu=gpu, ts=T0 + timedelta(minutes=m),
        defaults={"covered_s": 60, "busy_s": 60 if busy else 0, "samples": 60,
                  "util_mean_pct": 80.0 if busy else 0.0, "mem_frac_mean": mem},
    )  # fmt: skip


@pytest.fixture
def gpus(db):  # type: ignore[no-untyped-def]
    node = Node.objects.create(
        site=Site.objects.create(slug="lab", provider="on-prem"), hostname="gpu-1"
    )
    return [Gpu.objects.create(node=node, uuid=f"GPU-{i}", index=i) for i in range(3)]


def only_idle_held() -> AlertRule:
    (held,) = [dict(r) for r in DEFAULT_RULES if r["kind"] == "idle_held"]
    rule, _ = AlertRule.objects.update_or_create(name=held.pop("name"), defaults=held)
    AlertRule.objects.exclude(pk=rule.pk).update(enabled=False)
    return rule


@pytest.mark.django_db
def test_idle_held_fires_after_thirty_minutes_and_resolves_with_hysteresis(gpus):
    rule = only_idle_held()
    assert (rule.threshold, rule.resolve_threshold, rule.for_s) == (1.0, 0.5, 1200)
    stuck, pausing, computing = gpus
    events: list[tuple[str, int, str]] = []
    for m in range(70):
        # stuck: 40% of VRAM, nothing computed from 10:00 to 10:45, then it computes 10:45 to
        # 10:50, holds idle again 10:50 to 10:54 and computes from then on.
        if m < 45:
            minute(stuck, m, busy=False, mem=0.4)
        elif m < 55:
            minute(stuck, m, busy=not 50 <= m < 54, mem=0.4)
        else:
            minute(stuck, m, busy=True, mem=0.4)
        # pausing: a 9-minute pause between steps every 20 minutes, memory held.
        minute(pausing, m, busy=m % 20 >= 9, mem=0.6)
        # computing: memory held while it computes.
        minute(computing, m, busy=True, mem=0.9)
        report = rules_evaluate(now=T0 + timedelta(minutes=m + 1))
        events += [("fired", m, Alert.objects.get(pk=pk).dedup_key) for pk in report.fired]
        events += [("resolved", m, Alert.objects.get(pk=pk).dedup_key) for pk in report.resolved]
    # The 10-minute window is all idle-held from the tick at 10:10 (pending), firing 20
    # minutes later (30 minutes in all). From 10:46 the share falls under the threshold but
    # stays at half until 10:54 (between the lines: still firing); at 10:55 the window holds
    # 4 idle-held minutes of 10, under the resolve line of half.
    assert events == [("fired", 29, "GPU-0"), ("resolved", 54, "GPU-0")]
    # The pauses between steps never last long enough; a GPU that computes is never idle.
    assert not Alert.objects.filter(dedup_key="GPU-1", fired_at__isnull=False).exists()
    assert not Alert.objects.filter(dedup_key="GPU-2").exists()
    assert Alert.objects.get(dedup_key="GPU-0").state == AlertState.RESOLVED
