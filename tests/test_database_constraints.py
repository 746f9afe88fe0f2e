"""The database itself keeps data honest, whatever code path writes to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from finops.costing.models import Bucket, Component, LedgerEntry
from finops.fleet.models import Gpu, GpuModel, Node, Site
from finops.jobs.models import GpuAllocation, RenderJob
from finops.pricing.models import PriceRate
from finops.telemetry.models import GpuHour, GpuSample

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def gpu() -> Gpu:
    site = Site.objects.create(slug="aws-us-east-1", provider="aws", region="us-east-1")
    node = Node.objects.create(site=site, hostname="gpu-a1", instance_type="p5.48xlarge")
    return Gpu.objects.create(
        node=node, uuid="GPU-5fd4", index=0, model=GpuModel.objects.get(name="H100 SXM")
    )


def _rejected(**kwargs) -> None:  # type: ignore[no-untyped-def]
    model = kwargs.pop("model")
    with pytest.raises(IntegrityError), transaction.atomic():
        model.objects.create(**kwargs)


def test_negative_memory_reading_is_rejected(gpu):
    _rejected(model=GpuSample, gpu=gpu, ts=T0, mem_used_bytes=-1)
    assert not GpuSample.objects.exists()


def test_memory_used_above_total_is_rejected(gpu):
    _rejected(model=GpuSample, gpu=gpu, ts=T0, mem_used_bytes=90, mem_total_bytes=80)


def test_utilisation_out_of_range_is_rejected(gpu):
    _rejected(model=GpuSample, gpu=gpu, ts=T0, sm_util_pct=100.5)
    _rejected(model=GpuSample, gpu=gpu, ts=T0, sm_util_pct=-0.1)


def test_duplicate_gpu_ts_sample_is_rejected_and_first_is_kept(gpu):
    GpuSample.objects.create(gpu=gpu, ts=T0, sm_util_pct=87.0)
    _rejected(model=GpuSample, gpu=gpu, ts=T0, sm_util_pct=12.0)
    assert list(GpuSample.objects.values_list("sm_util_pct", flat=True)) == [87.0]


def test_negative_price_is_rejected():
    _rejected(
        model=PriceRate,
        provider="aws",
        sku="p5.48xlarge",
        region="us-east-1",
        pricing_model="on-demand",
        gpus_per_unit=8,
        price_per_unit_hour=Decimal("-55.04"),
        price_per_gpu_hour=Decimal("-6.88"),
        valid_from=T0,
        source="aws",
    )


def test_price_validity_must_be_forward():
    _rejected(
        model=PriceRate,
        provider="aws",
        sku="p5.48xlarge",
        pricing_model="on-demand",
        price_per_unit_hour=Decimal("55.04"),
        price_per_gpu_hour=Decimal("6.88"),
        valid_from=T0,
        valid_to=T0 - timedelta(days=1),
        source="aws",
    )


def test_negative_node_price_override_is_rejected(gpu):
    node = gpu.node
    node.price_override_per_gpu_hour = Decimal("-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        node.save()


def test_second_job_with_same_source_and_external_id_is_rejected(team_a):
    RenderJob.objects.create(source="farm-1", external_id="job-123", team=team_a)
    _rejected(model=RenderJob, source="farm-1", external_id="job-123", team=team_a)
    # The same external id from another farm is a different job.
    RenderJob.objects.create(source="farm-2", external_id="job-123", team=team_a)
    assert RenderJob.objects.count() == 2


def test_job_cannot_finish_before_it_started(team_a):
    _rejected(
        model=RenderJob,
        source="farm-1",
        external_id="job-1",
        team=team_a,
        started_at=T0,
        finished_at=T0 - timedelta(seconds=1),
    )


def test_allocation_interval_must_be_forward(team_a, gpu):
    job = RenderJob.objects.create(source="farm-1", external_id="job-1", team=team_a)
    _rejected(model=GpuAllocation, job=job, gpu=gpu, start=T0, end=T0 - timedelta(minutes=1))


def test_rollup_seconds_cannot_exceed_the_period(gpu):
    _rejected(model=GpuHour, gpu=gpu, ts=T0, busy_s=3600.5)
    GpuHour.objects.create(gpu=gpu, ts=T0, busy_s=3600)


def test_ledger_team_bucket_needs_a_team_and_idle_has_none(team_a):
    common = {
        "window_start": T0,
        "component": Component.GPU,
        "quantity": Decimal(1),
        "unit": "gpu_hour",
        "amount": Decimal("6.88"),
    }
    _rejected(model=LedgerEntry, bucket=Bucket.TEAM, team=None, **common)
    _rejected(model=LedgerEntry, bucket=Bucket.IDLE, team=team_a, **common)
    _rejected(
        model=LedgerEntry, bucket=Bucket.TEAM, team=team_a, **{**common, "amount": Decimal(-1)}
    )
    _rejected(
        model=LedgerEntry, bucket=Bucket.TEAM, team=team_a, **{**common, "activity": Decimal(2)}
    )
    LedgerEntry.objects.create(bucket=Bucket.IDLE, team=None, **common)


def test_team_slug_cannot_take_a_reserved_ledger_name():
    from finops.accounts.models import Team

    _rejected(model=Team, slug="__idle__", name="sneaky")
