"""Property: the daily summaries the ledger keeps (by team, node and GPU model; by job
dimension; output seconds; clips) give the same allocation reports and clip costs as the
ledger lines they summarise, for random fleets, jobs, windows, aggregates, steps, idle
policies and bases: every figure to the cent."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.db.models import Count, Q, Sum
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from finops.accounts.models import Team
from finops.costing.engine import ledger_recompute
from finops.costing.models import LedgerEntry
from finops.costing.selectors import AllocationQuery, allocation_report, clip_costs, report_parts
from finops.fleet.models import Gpu, GpuModel, Node, Site, StorageDevice
from finops.jobs.models import JobStatus, RenderJob
from finops.jobs.services import AllocationIn, job_record
from finops.pricing.models import PriceRate
from finops.telemetry.models import GpuHour

T0 = datetime(2026, 11, 3, tzinfo=UTC)
DAYS = 3
SPAN_S = DAYS * 86400
STATUSES = [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.OOM]
AGGREGATES = ["team", "project", "model", "model_version", "resolution", "node", "gpu_model"]

job_strategy = st.tuples(
    st.integers(0, 2),  # team
    st.sampled_from(["", "trailer", "promo"]),  # project
    st.sampled_from(["wan", "ltx"]),  # model
    st.sampled_from(["", "2.1"]),  # version
    st.sampled_from([None, (1280, 720), (832, 480)]),  # size
    st.sampled_from(STATUSES),
    st.one_of(st.none(), st.booleans()),  # usable
    st.one_of(st.none(), st.integers(0, 4)),  # clip
    # (gpu, start, length): one to three GPUs, anywhere in the three days
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, SPAN_S - 60), st.integers(60, 30000)),
             min_size=1, max_size=3, unique_by=lambda a: a[0]),
)  # fmt: skip
telemetry_strategy = st.dictionaries(
    st.tuples(st.integers(0, 3), st.integers(0, DAYS * 24 - 1)),
    st.tuples(st.integers(0, 3600), st.floats(0, 100), st.floats(0, 5e6)),
    max_size=12,
)
window_strategy = st.tuples(
    st.integers(-2, DAYS * 24 + 1), st.integers(1, DAYS * 24 + 2), st.integers(0, 59)
)


def _build(jobs, telemetry):  # type: ignore[no-untyped-def]
    teams = [Team.objects.create(slug=f"t{i}", name=f"T{i}") for i in range(3)]
    cloud = Site.objects.create(slug="cloud", provider="aws", region="us-east-1")
    lab = Site.objects.create(slug="lab", provider="on-prem", region="dc")
    h100, l40s = GpuModel.objects.get(name="H100 SXM"), GpuModel.objects.get(name="L40S")
    nodes = [
        Node.objects.create(site=cloud, hostname="c1", instance_type="g6e.48xlarge"),
        Node.objects.create(site=lab, hostname="l1", instance_type="rack-1",
                            pricing_model="on-prem"),
        Node.objects.create(site=cloud, hostname="c2", instance_type="unpriced.xlarge"),
    ]  # fmt: skip
    gpus = [
        Gpu.objects.create(node=nodes[0], uuid="GPU-0", index=0, model=l40s),
        Gpu.objects.create(node=nodes[0], uuid="GPU-1", index=1, model=l40s),
        Gpu.objects.create(node=nodes[1], uuid="GPU-2", index=0, model=h100),
        Gpu.objects.create(node=nodes[2], uuid="GPU-3", index=0, model=h100),
    ]
    before = T0 - timedelta(days=1)
    PriceRate.objects.create(
        provider="aws",
        sku="g6e.48xlarge",
        region="us-east-1",
        pricing_model="on-demand",
        gpus_per_unit=8,
        price_per_unit_hour=Decimal("14.72"),
        price_per_gpu_hour=Decimal("1.84"),
        valid_from=before,
        source="csv",
    )
    PriceRate.objects.create(
        provider="on-prem",
        sku="rack-1",
        region="dc",
        pricing_model="on-prem",
        gpus_per_unit=1,
        price_per_unit_hour=Decimal("2.1"),
        price_per_gpu_hour=Decimal("2.1"),
        energy_per_kwh=Decimal("0.15"),
        pue=Decimal("1.4"),
        valid_from=before,
        source="onprem",
    )
    PriceRate.objects.create(
        provider="aws",
        sku="gp3",
        region="us-east-1",
        pricing_model="on-demand",
        gpus_per_unit=1,
        price_per_unit_hour=0,
        price_per_gpu_hour=0,
        storage_per_gb_month=Decimal("0.08"),
        valid_from=before,
        source="csv",
    )
    StorageDevice.objects.create(
        node=nodes[0], name="nvme1n1", kind="network", volume_type="gp3", capacity_bytes=2 * 10**12
    )
    for (gpu, hour), (covered, util, energy) in telemetry.items():
        GpuHour.objects.create(
            gpu=gpus[gpu],
            ts=T0 + timedelta(hours=hour),
            covered_s=covered,
            busy_s=covered // 2,
            util_mean_pct=util,
            energy_j=energy,
        )
    for n, (team, project, model, version, size, status, usable, clip, spans) in enumerate(jobs):
        start = min(T0 + timedelta(seconds=s) for _, s, _ in spans)
        end = max(T0 + timedelta(seconds=min(s + length, SPAN_S)) for _, s, length in spans)
        job_record(
            source="farm", external_id=f"j{n}", team=teams[team], status=status,
            clip_id=None if clip is None else f"clip-{clip}", usable=usable, project=project,
            model_name=model, model_version=version, width=size[0] if size else None,
            height=size[1] if size else None, frames=81, fps=16.0, started_at=start,
            finished_at=end,
            allocations=[AllocationIn(uuid=f"GPU-{g}", start=T0 + timedelta(seconds=s),
                                      end=T0 + timedelta(seconds=min(s + length, SPAN_S)))
                         for g, s, length in spans],
        )  # fmt: skip
    ledger_recompute(start=T0 - timedelta(days=1), end=T0 + timedelta(days=DAYS + 1))
    return teams


def _clip_costs_from_lines(teams, start, end):  # type: ignore[no-untyped-def]
    """Clip costs as the lines and jobs say, independently of the clip summary: attempts
    that started in the window, clips whose first usable attempt started in it, and the
    clips with cost in it, with all their attempts."""
    costs = dict(
        LedgerEntry.objects.filter(team__in=teams, window_start__gte=start, window_start__lt=end,
                                   job__clip__isnull=False)
        .values("job__clip_id").annotate(total=Sum("amount"))
        .values_list("job__clip_id", "total").order_by()
    )  # fmt: skip
    tried = {
        r["clip_id"]: (r["n"], r["good"])
        for r in RenderJob.objects.filter(clip_id__in=list(costs), started_at__isnull=False)
        .values("clip_id").annotate(n=Count("id"), good=Count("id", filter=Q(usable=True)))
    }  # fmt: skip
    attempts = RenderJob.objects.filter(team__in=teams, clip__isnull=False,
                                        started_at__gte=start, started_at__lt=end)  # fmt: skip
    first_usable = {}
    for clip_id, started in (
        RenderJob.objects.filter(clip__isnull=False, usable=True)
        .order_by("started_at")
        .values_list("clip_id", "started_at")
    ):
        first_usable.setdefault(clip_id, started)
    ranked = sorted(costs, key=lambda c: (-costs[c], c))
    return {
        "count": len(costs),
        "attempts": attempts.count(),
        "usable_clips": sum(
            1
            for clip_id, started in first_usable.items()
            if start <= started < end and attempts.filter(clip_id=clip_id).exists()
        ),
        "clips": [(c, tried[c], str(costs[c].quantize(Decimal("0.01")))) for c in ranked],
    }


def _comparable(report):  # type: ignore[no-untyped-def]
    """Every figure of a report; seconds (floats summed in another order) to the millisecond."""
    out = defaultdict(dict)
    for step in report["steps"]:
        for row in step["rows"]:
            out[step["start"]][row["name"]] = {
                k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()
            }
    return dict(out), report["warnings"]


@pytest.mark.django_db
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(
    jobs=st.lists(job_strategy, min_size=1, max_size=10),
    telemetry=telemetry_strategy,
    data=st.data(),
)
def test_summaries_equal_the_lines_they_summarise(jobs, telemetry, data):
    with transaction.atomic():
        teams = _build(jobs, telemetry)
        sources = set()
        for _ in range(8):
            first, length, minute = data.draw(window_strategy)
            start = T0 + timedelta(hours=first, minutes=minute if data.draw(st.booleans()) else 0)
            end = start + timedelta(hours=length)
            aggregate = data.draw(
                st.lists(st.sampled_from(AGGREGATES), min_size=1, max_size=3, unique=True)
            )
            params = {
                "window": f"{start.isoformat()},{end.isoformat()}",
                "aggregate": ",".join(aggregate),
                "step": data.draw(st.sampled_from(["window", "1d"])),
                "idle": data.draw(st.sampled_from(["separate", "share", "hide"])),
                "share_idle_by": data.draw(st.sampled_from(["fleet", "node"])),
                "basis": data.draw(st.sampled_from(["allocation", "usage"])),
            }
            query = AllocationQuery.from_params(params)
            sources |= {p.source for p in report_parts(query)}
            scope = data.draw(st.sampled_from(["all", "one"]))
            visible = Team.objects.all() if scope == "all" else Team.objects.filter(pk=teams[0].pk)
            kwargs = {"query": query, "teams": visible, "all_teams": scope == "all"}
            summarised = allocation_report(**kwargs)
            from_lines = allocation_report(**kwargs, summaries=False)
            assert _comparable(summarised) == _comparable(from_lines), params
            got = clip_costs(teams=visible, start=start, end=end)
            want = _clip_costs_from_lines(visible, start, end)
            assert {k: got[k] for k in ("count", "attempts", "usable_clips")} == {
                k: want[k] for k in ("count", "attempts", "usable_clips")
            }
            assert [
                (
                    c["clip_id"],
                    (c["attempts"], c["usable"]),
                    str(c["cost"].quantize(Decimal("0.01"))),
                )
                for c in got["clips"]
            ] == want["clips"]
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_whole_days_come_from_the_summaries_and_the_hours_around_them_from_lines():
    start, end = T0 + timedelta(hours=5), T0 + timedelta(days=2, hours=3)
    query = AllocationQuery.from_params(
        {"window": f"{start.isoformat()},{end.isoformat()}", "aggregate": "team,project"}
    )
    assert [(p.source, p.start, p.end) for p in report_parts(query)] == [
        ("lines", start, T0 + timedelta(days=1)),
        ("dimension", T0 + timedelta(days=1), T0 + timedelta(days=2)),
        ("lines", T0 + timedelta(days=2), end),
    ]
    by_node = AllocationQuery.from_params(
        {"window": f"{T0.isoformat()},{(T0 + timedelta(days=2)).isoformat()}",
         "aggregate": "node,gpu_model"}
    )  # fmt: skip
    assert [p.source for p in report_parts(by_node)] == ["day"]
    hourly = AllocationQuery.from_params(
        {"window": f"{T0.isoformat()},{(T0 + timedelta(days=2)).isoformat()}", "step": "1h"}
    )
    assert [p.source for p in report_parts(hourly)] == ["lines"]
    by_job = AllocationQuery.from_params(
        {"window": f"{T0.isoformat()},{(T0 + timedelta(days=2)).isoformat()}", "aggregate": "job"}
    )
    assert [p.source for p in report_parts(by_job)] == ["lines"]
