"""Cost gauges for Prometheus and Grafana at ``/metrics/costs``, labelled in OpenCost's
manner: what a GPU costs an hour now, month-to-date cost per team and component, cost per
usable second per team, open findings and their projected savings. Computed from the
ledger (through the allocation report, so they equal ``GET /api/v1/allocation`` for the
month to date) and the findings table, cached for a minute so a scrape every 15 s stays
cheap."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Count, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from finops.accounts.models import Team
from finops.costing.funnel import funnel
from finops.costing.selectors import AllocationQuery, allocation_report, parse_window
from finops.fleet.models import Gpu
from finops.insights.models import Finding, FindingStatus
from finops.pricing.selectors import PriceBook

CACHE_KEY = "frameops:cost-metrics"
CACHE_S = 60
COMPONENTS = ("gpu", "idle", "storage", "energy", "waste")


def _month_to_date(now: datetime) -> AllocationQuery:
    start, end = parse_window("monthtodate", now=now)
    return AllocationQuery(
        start=start, end=end, aggregate=("team",), step="window", idle="separate",
        basis="allocation",
    )  # fmt: skip


def cost_families(*, now: datetime | None = None) -> list[GaugeMetricFamily]:
    now = now or timezone.now()
    hourly = GaugeMetricFamily(
        "frameops_gpu_hourly_cost",
        "What one GPU costs an hour now (the price the ledger would charge), by GPU.",
        labels=["node", "gpu", "gpu_model", "provider", "region", "currency"],
    )
    gpus = list(
        Gpu.objects.filter(retired_at__isnull=True, mig_parent__isnull=True).select_related(
            "node__site", "model"
        )
    )
    book = PriceBook(providers={g.node.site.provider for g in gpus})
    models_by_node: dict[int, Counter[object]] = defaultdict(Counter)
    for g in gpus:
        models_by_node[g.node_id][g.model] += 1
    prices = {}
    for g in gpus:
        if g.node_id not in prices:
            model = models_by_node[g.node_id].most_common(1)[0][0]
            prices[g.node_id] = book.resolve(node=g.node, at=now, gpu_model=model)  # type: ignore[arg-type]
        price = prices[g.node_id]
        if price.price is None:
            continue  # unpriced: no number is better than a zero
        hourly.add_metric(
            [g.node.hostname, str(g.index), g.model.name if g.model else "", g.node.site.provider,
             g.node.site.region, price.currency],
            float(price.price),
        )  # fmt: skip
    month = GaugeMetricFamily(
        "frameops_team_month_to_date_cost",
        "Cost this calendar month (UTC) so far, by team and component (allocation basis, "
        "idle and unallocated time as teams __idle__ and __unallocated__); component total "
        "is GET /api/v1/allocation's total_cost.",
        labels=["team", "component", "currency"],
    )
    per_second = GaugeMetricFamily(
        "frameops_team_cost_per_usable_second",
        "Cost per usable second of video this calendar month so far, by team.",
        labels=["team", "currency"],
    )
    report = allocation_report(query=_month_to_date(now), teams=Team.objects.all(), all_teams=True)
    currency = report["currency"]
    for row in report["steps"][0]["rows"]:
        for component in COMPONENTS:
            month.add_metric([row["name"], component, currency], float(row[f"{component}_cost"]))
        month.add_metric([row["name"], "total", currency], float(row["total_cost"]))
        if row["cost_per_usable_second"] is not None:
            per_second.add_metric([row["name"], currency], float(row["cost_per_usable_second"]))
    findings = GaugeMetricFamily(
        "frameops_findings_open",
        "Findings not resolved (open or acknowledged), by pattern and severity.",
        labels=["pattern", "severity"],
    )
    savings = GaugeMetricFamily(
        "frameops_findings_monthly_savings",
        "Projected monthly savings of the findings not resolved, by pattern.",
        labels=["pattern", "currency"],
    )
    unresolved = Finding.objects.exclude(status=FindingStatus.RESOLVED)
    for r in unresolved.values("pattern", "severity").annotate(n=Count("id")).order_by():
        findings.add_metric([r["pattern"], r["severity"]], r["n"])
    for r in (
        unresolved.values("pattern", "currency").annotate(total=Sum("est_monthly_waste")).order_by()
    ):
        savings.add_metric([r["pattern"], r["currency"]], float(r["total"] or Decimal(0)))
    stages = GaugeMetricFamily(
        "frameops_funnel_cost",
        "The fleet funnel this calendar month so far: cost at each stage (paid, held, active, "
        "used, usable), by team (__idle__: idle and unallocated time) and GPU model.",
        labels=["stage", "team", "gpu_model", "currency"],
    )
    start, end = parse_window("monthtodate", now=now)
    for by in ("team", "gpu_model"):
        body = funnel(teams=Team.objects.all(), all_teams=True, start=start, end=end, by=by)
        for row in body["rows"]:
            team = row["name"] if by == "team" else ""
            if team == "(idle and unallocated)":
                team = "__idle__"
            for stage in row["stages"]:
                stages.add_metric([stage["stage"], team, row["name"] if by == "gpu_model" else "",
                                   currency], float(stage["cost"]))  # fmt: skip
    return [hourly, month, per_second, findings, savings, stages]


class _Families:
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self._families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self._families


def cost_exposition(*, now: datetime | None = None, fresh: bool = False) -> bytes:
    """The exposition text, from the cache when it is less than a minute old."""
    if not fresh:
        cached = cache.get(CACHE_KEY)
        if cached is not None:
            return bytes(cached)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(cost_families(now=now)))  # type: ignore[arg-type]
    body = generate_latest(registry)
    cache.set(CACHE_KEY, body, CACHE_S)
    return body
