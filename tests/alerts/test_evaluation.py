"""Alert evaluation: pending, firing after for_s, hysteresis, one resolve, one open alert
per rule and subject even with two evaluators."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from finops.alerts.evaluation import rules_evaluate
from finops.alerts.models import Alert, AlertRule, AlertState
from finops.fleet.models import Gpu, Node, Site
from finops.telemetry.models import GpuMinute

T0 = datetime(2026, 11, 2, 10, tzinfo=UTC)


def minute(gpu: Gpu, m: int, thermal_s: float) -> None:
    GpuMinute.objects.update_or_create(
        gpu=gpu, ts=T0 + timedelta(minutes=m),
        defaults={"covered_s": 60, "busy_s": 60, "samples": 60, "throttle_sw_thermal_s": thermal_s},
    )  # fmt: skip


@pytest.fixture
def gpu(db):  # type: ignore[no-untyped-def]
    node = Node.objects.create(
        site=Site.objects.create(slug="lab", provider="on-prem"), hostname="hot-1"
    )
    return Gpu.objects.create(node=node, uuid="GPU-hot", index=0)


def only_thermal() -> AlertRule:
    """The default thermal rule as the migrations seed it (a transactional test before this
    one may have flushed it), alone enabled."""
    from finops.alerts.defaults import DEFAULT_RULES

    (thermal,) = [dict(r) for r in DEFAULT_RULES if r["name"] == "Thermal throttling"]
    rule, _ = AlertRule.objects.update_or_create(name=thermal.pop("name"), defaults=thermal)
    AlertRule.objects.exclude(pk=rule.pk).update(enabled=False)
    return rule


@pytest.mark.django_db
def test_six_minutes_of_throttling_fires_once_after_for_s_and_resolves_once(gpu):
    rule = only_thermal()
    assert (rule.threshold, rule.resolve_threshold, rule.for_s) == (0.05, 0.02, 300)
    fired, resolved = [], []
    # Throttled 30 s of every minute from 10:00 to 10:06, then cool.
    for m in range(12):
        minute(gpu, m, 30.0 if m < 6 else 0.0)
        report = rules_evaluate(now=T0 + timedelta(minutes=m + 1))
        fired += [(m, pk) for pk in report.fired]
        resolved += [(m, pk) for pk in report.resolved]
    # Pending from the tick at 10:01; firing at 10:06 (held 300 s); the 5-minute window
    # still holds throttled minutes until the one ending 10:11, whose share is 0 < 0.02.
    assert [m for m, _ in fired] == [5]
    assert [m for m, _ in resolved] == [10]
    alert = Alert.objects.get()
    assert alert.state == AlertState.RESOLVED
    assert alert.labels == {"gpu": "GPU-hot", "node": "hot-1", "site": "lab", "gpu_model": ""}


@pytest.mark.django_db
def test_a_value_between_the_thresholds_neither_resolves_nor_fires_again(gpu):
    only_thermal()
    for m in range(6):
        minute(gpu, m, 30.0)
        rules_evaluate(now=T0 + timedelta(minutes=m + 1))
    assert Alert.objects.get().state == AlertState.FIRING
    # 3% throttled: under the 5% threshold, over the 2% resolve threshold.
    events = []
    for m in range(6, 20):
        minute(gpu, m, 1.8)
        report = rules_evaluate(now=T0 + timedelta(minutes=m + 1))
        events += report.fired + report.resolved
    assert events == []
    assert Alert.objects.get().state == AlertState.FIRING
    assert Alert.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_evaluators_at_once_fire_once(gpu):
    only_thermal()
    for m in range(6):
        minute(gpu, m, 30.0)
    rules_evaluate(now=T0 + timedelta(minutes=1))  # pending
    results, errors = [], []

    def tick() -> None:
        try:
            results.append(rules_evaluate(now=T0 + timedelta(minutes=6)).fired)
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(len(f) for f in results) == [0, 1]
    assert Alert.objects.filter(state=AlertState.FIRING).count() == 1
