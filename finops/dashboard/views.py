"""Manager dashboards, server-rendered: views call selectors, pass their rows to the
figures and to the tables under them (the same rows, also as CSV), and obey the same roles
as the API. No view runs a query per row (tests/dashboard/test_queries.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Avg, Count, F, Max, Q, QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from finops.accounts.models import Team
from finops.accounts.selectors import team_list_visible
from finops.alerts.models import Alert, AlertState
from finops.costing.funnel import funnel
from finops.costing.models import Basis, Bucket, LedgerDay
from finops.costing.money import money_str
from finops.costing.selectors import (
    AllocationQuery,
    QueryError,
    allocation_report,
    clip_costs,
    month_burn,
    parse_window,
)
from finops.dashboard import figures
from finops.dashboard.tables import Col, Table, table_export, tables_link
from finops.fleet.models import Gpu, Node, Site
from finops.insights.models import FindingStatus
from finops.insights.selectors import (
    finding_judges,
    finding_list_visible,
    finding_may_judge,
    savings_statement,
    savings_statement_csv,
    savings_summary,
)
from finops.insights.services import finding_status_set
from finops.jobs.models import GpuAllocation, JobStatus, RenderJob
from finops.pricing.selectors import planner_prices
from finops.telemetry.models import GpuHour, GpuMinute, StorageSample

WINDOWS = {
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "monthtodate": "Month to date",
    "lastmonth": "Last month",
    "custom": "Custom…",
}
EMPTY_COST = (
    "No cost in this window yet: register nodes and send job events to POST /api/v1/jobs "
    "(docs/costing.md), or run manage.py simulate_studio for a labelled demo."
)


# --- what every page shares ----------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    key: str
    start: datetime
    end: datetime
    start_day: str = ""
    end_day: str = ""
    # ``START,END`` as given (links from reports and alerts carry exact times).
    exact: str = ""

    @property
    def query(self) -> str:
        """The ``window`` parameter of the selectors (and of the API) for this window."""
        if self.key == "custom":
            return f"{self.start.isoformat()},{self.end.isoformat()}"
        return self.key

    @property
    def qs(self) -> str:
        params = {"window": self.exact or self.key}
        if self.key == "custom" and not self.exact:
            params.update({"from": self.start_day, "to": self.end_day})
        return urlencode(params)

    @property
    def label(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} \N{EN DASH} {self.end:%Y-%m-%d %H:%M} UTC"


def _day(request: HttpRequest, name: str) -> date:
    raw = request.GET.get(name, "").strip()
    if not raw:
        raise QueryError(name, "pick a date (YYYY-MM-DD) for a custom window")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise QueryError(name, f"{raw[:20]!r} is not a date (YYYY-MM-DD)") from None
    if not 2000 <= day.year <= 2100:
        raise QueryError(name, "must lie in the years 2000 to 2100")
    return day


def window_from(request: HttpRequest, default: str = "7d") -> Window:
    """The window picker's choice: a named window, ``custom`` with ``from`` and ``to``
    (whole UTC days, ``to`` included), or ``START,END`` in RFC 3339 as the API takes it.
    Raises QueryError naming the field."""
    key = request.GET.get("window", default) or default
    if key == "custom":
        first, last = _day(request, "from"), _day(request, "to")
        if last < first:
            raise QueryError("to", "must not be before from")
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
        parse_window(f"{start.isoformat()},{end.isoformat()}")  # the selectors' limits
        return Window(key, start, end, first.isoformat(), last.isoformat())
    if "," in key:
        start, end = parse_window(key)
        last = (end - timedelta(microseconds=1)).date()
        return Window("custom", start, end, start.date().isoformat(), last.isoformat(), key)
    if key not in WINDOWS:
        raise QueryError("window", f"{key[:40]!r}: use {', '.join(WINDOWS)} (or START,END)")
    start, end = parse_window(key)
    return Window(key, start, end)


@dataclass(frozen=True)
class Scope:
    teams: QuerySet[Team]
    all_teams: bool


def _scope(request: HttpRequest) -> Scope:
    """The caller's teams, and whether that is every team, by the API's rule."""
    teams = team_list_visible(user=request.user)
    return Scope(teams, teams.count() == Team.objects.count())


def _simulated() -> bool:
    return Site.objects.filter(slug__startswith="sim-").exists()


def _page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    tables: list[Table] | None = None,
    status: int = 200,
) -> HttpResponse:
    """Render ``template``, or with ``format=csv`` (or ``parquet``) one of its tables."""
    tables = list(tables or [])
    for chart in context.get("charts", {}).values():
        tables.append(chart.table)
    if request.GET.get("format") in ("csv", "parquet") and status == 200:
        return table_export(request, tables)
    tables_link(request, tables)
    context.setdefault("simulated", _simulated())
    context.setdefault("windows", WINDOWS)
    context["tables"] = {t.id.replace("-", "_"): t for t in tables}
    return render(request, template, context, status=status)


def _error(
    request: HttpRequest, template: str, context: dict[str, Any], exc: QueryError
) -> HttpResponse:
    context["error"] = f"{exc.parameter}: {exc.message}"
    context.setdefault("win", None)
    return _page(request, template, context, status=400)


@dataclass
class Chart:
    id: str
    figure: str
    table: Table
    # False where the page shows the table itself, not folded under the chart.
    folded: bool = True

    @property
    def data_id(self) -> str:
        return f"{self.id}-data"


def _pct(part: Decimal | float | None, whole: Decimal | float | None) -> float | None:
    if part is None or not whole:
        return None
    return round(float(part) / float(whole) * 100, 1)


def _change(now: Any, before: Any) -> float | None:
    if now is None or before is None or not Decimal(before):
        return None
    return round((float(Decimal(now)) / float(Decimal(before)) - 1) * 100, 1)


# --- overview ------------------------------------------------------------------------------


@login_required
def overview(request: HttpRequest) -> HttpResponse:
    """Spend against the window before, cost per usable second per team with its trend,
    budget burn and month-end forecast, the top findings and what is firing."""
    scope = _scope(request)
    context: dict[str, Any] = {"switch_teams": scope.teams, "current_team": None}
    try:
        win = window_from(request)
    except QueryError as exc:
        return _error(request, "dashboard/overview.html", context, exc)
    context["win"] = win
    whole = AllocationQuery.from_params({"window": win.query, "aggregate": "team"})
    daily = AllocationQuery.from_params({"window": win.query, "aggregate": "team", "step": "1d"})
    before = AllocationQuery(
        start=whole.start - (whole.end - whole.start),
        end=whole.start,
        aggregate=("team",),
        step="window",
        idle="separate",
        basis="allocation",
    )
    report = allocation_report(query=whole, teams=scope.teams, all_teams=scope.all_teams)
    days = allocation_report(query=daily, teams=scope.teams, all_teams=scope.all_teams)
    previous = allocation_report(query=before, teams=scope.teams, all_teams=scope.all_teams)
    currency = report["currency"]
    rows = report["steps"][0]["rows"]
    prior = {r["name"]: r for r in previous["steps"][0]["rows"]}
    teams = {t.slug: t for t in scope.teams}
    burns = month_burn(teams.values())
    spend = sum((Decimal(r["total_cost"]) for r in rows), Decimal(0))
    spend_before = sum((Decimal(r["total_cost"]) for r in prior.values()), Decimal(0))
    idle = sum((Decimal(r["idle_cost"]) for r in rows), Decimal(0))
    regen = sum((Decimal(r["regeneration_cost"]) for r in rows), Decimal(0))
    usable = sum((r["usable_seconds"] or 0.0) for r in rows)
    team_rows = []
    for r in rows:
        team = teams.get(r["name"])
        burn = burns.get(team.pk) if team else None
        was = prior.get(r["name"], {})
        team_rows.append(
            {
                **r,
                "team": r["name"],
                "href": f"{reverse('dashboard:team', args=[r['name']])}?{win.qs}" if team else None,
                "change_pct": _change(r["total_cost"], was.get("total_cost")),
                "idle_share_pct": _pct(Decimal(r["idle_cost"]), Decimal(r["total_cost"])),
                "regeneration_share_pct": _pct(
                    Decimal(r["regeneration_cost"]), Decimal(r["total_cost"])
                ),
                "cps_change_pct": _change(
                    r["cost_per_usable_second"], was.get("cost_per_usable_second")
                ),
                "budget": money_str(burn.budget) if burn and burn.budget is not None else None,
                "month_to_date": money_str(burn.spent) if burn else None,
                "forecast": money_str(burn.forecast) if burn else None,
                "forecast_burn_pct": round(burn.forecast_burn * 100, 1)
                if burn and burn.forecast_burn is not None
                else None,
            }
        )
    findings = list(
        finding_list_visible(teams=scope.teams, all_teams=scope.all_teams)
        .exclude(status=FindingStatus.RESOLVED)
        .order_by("-est_monthly_waste")[:5]
    )
    alerts = Alert.objects.filter(state=AlertState.FIRING).select_related("rule")
    if not scope.all_teams:
        alerts = alerts.filter(rule__team__in=scope.teams)
    money = f"({currency})"
    team_table = Table(
        "teams",
        "By team",
        [
            Col("team", "Team", link="href"),
            Col("total_cost", f"Total {money}", num=True),
            Col("change_pct", "vs before (%)", num=True),
            Col("idle_share_pct", "Idle (%)", num=True),
            Col("regeneration_cost", "Regeneration", num=True),
            Col("regeneration_share_pct", "Regen. (%)", num=True),
            Col("usable_seconds", "Usable s", num=True, places=1),
            Col("cost_per_usable_second", f"Per usable s {money}", num=True),
            Col("cps_change_pct", "vs before (%)", num=True),
            Col("budget", "Budget a month", num=True),
            Col("month_to_date", "Month to date", num=True),
            Col("forecast", "Month-end forecast", num=True),
            Col("forecast_burn_pct", "Of budget (%)", num=True),
            Col("unpriced_gpu_hours", "Unpriced GPU-h", num=True),
        ],
        team_rows,
        empty=EMPTY_COST,
        note="vs before: against the window of the same length before it. Idle is the "
        "fleet's unused GPU time (a row for those who see every team). The month to date and "
        "its month-end forecast are for the calendar month in UTC.",
    )
    finding_table = Table(
        "findings",
        "Top findings",
        [
            Col("pattern", "Pattern"),
            Col("scope", "Scope"),
            Col("team", "Team"),
            Col("monthly", f"Save up to {money} a month", num=True),
            Col("recommendation", "Recommendation"),
        ],
        [
            {
                "pattern": f.get_pattern_display(),
                "scope": f"{f.scope_kind} {f.scope_key}",
                "team": f.team.slug if f.team else "fleet",
                "monthly": money_str(f.est_monthly_waste),
                "recommendation": f.recommendation,
            }
            for f in findings
        ],
        empty="No open findings. The detectors run hourly; manage.py detect --from … --to … "
        "runs them now.",
    )
    alert_table = Table(
        "alerts",
        "Firing alerts",
        [
            Col("rule", "Rule"),
            Col("subject", "Subject"),
            Col("value", "Value", num=True, places=3),
            Col("since", "Since (UTC)"),
        ],
        [
            {
                "rule": a.rule.name,
                "subject": a.dedup_key,
                "value": a.value,
                "since": f"{a.fired_at:%Y-%m-%d %H:%M}",
            }
            for a in alerts[:10]
        ],
        empty="Nothing is firing.",
    )
    per_day = [
        {"day": s["start"][:10], "team": r["name"], "total_cost": r["total_cost"],
         "cost_per_usable_second": r["cost_per_usable_second"],
         "usable_seconds": r["usable_seconds"]}
        for s in days["steps"] for r in s["rows"]
    ]  # fmt: skip
    day_cols = [
        Col("day", "Day (UTC)"),
        Col("team", "Team"),
        Col("total_cost", f"Total {money}", num=True),
        Col("cost_per_usable_second", f"Per usable second {money}", num=True),
        Col("usable_seconds", "Usable s", num=True, places=1),
    ]
    charts = {}
    stages = funnel(teams=scope.teams, all_teams=scope.all_teams, start=win.start, end=win.end)
    fleet_row = stages["rows"][0] if stages["rows"] else None
    if rows:
        charts = {
            "spend": Chart(
                "spend-chart",
                figures.spend_by_team_per_day(days["steps"], currency).to_json(),
                Table("spend-days", "", day_cols, per_day),
            ),
            "cps": Chart(
                "cps-chart",
                figures.cost_per_usable_second_trend(days["steps"], currency).to_json(),
                Table("cps-days", "", day_cols, [r for r in per_day if r["team"][:2] != "__"]),
            ),
        }
        if fleet_row is not None:
            paid = Decimal(fleet_row["stages"][0]["cost"])
            charts["funnel"] = Chart(
                "funnel-chart",
                figures.funnel(fleet_row["stages"], currency).to_json(),
                Table("funnel", "", [
                    Col("stage", "Stage"), Col("gpu_hours", "GPU-hours", num=True),
                    Col("cost", f"Cost {money}", num=True),
                    Col("share", "Of paid", num=True),
                ], [{**st, "share": _pct(Decimal(st["cost"]), paid)}
                    for st in fleet_row["stages"]]),
                folded=False,
            )  # fmt: skip
    context.update(
        {
            "currency": currency,
            "spend": money_str(spend),
            "spend_before": money_str(spend_before),
            "change": _change(spend, spend_before),
            "usable": usable,
            "regen_share": _pct(regen, spend),
            "idle_share": _pct(idle, spend),
            "warnings": report["warnings"],
            "rows": rows,
            "savings": money_str(sum((f.est_monthly_waste for f in findings), Decimal(0))),
            "realized": {
                k: money_str(v)
                for k, v in savings_summary(
                    finding_list_visible(teams=scope.teams, all_teams=scope.all_teams)
                )["totals"].items()
            },
            "alert_count": alerts.count(),
            "charts": charts,
            "yield": fleet_row["yield"] if fleet_row else None,
        }
    )
    return _page(
        request,
        "dashboard/overview.html",
        context,
        tables=[team_table, finding_table, alert_table],
    )


# --- findings ------------------------------------------------------------------------------


@login_required
def findings(request: HttpRequest) -> HttpResponse:
    """Findings seen in the window, by projected monthly savings, with evidence, the
    recommendation and the priced action; acknowledge and resolve for those who may."""
    scope = _scope(request)
    context: dict[str, Any] = {
        "switch_teams": scope.teams,
        "statuses": FindingStatus.choices,
    }
    status = request.GET.get("status", "open")
    context["status"] = status
    context["keep"] = {"status": status}
    try:
        if status not in FindingStatus.values and status != "all":
            raise QueryError(
                "status", f"{status[:20]!r}: use all, {', '.join(FindingStatus.values)}"
            )
        win = window_from(request, default="30d")
    except QueryError as exc:
        return _error(request, "dashboard/findings.html", context, exc)
    listed = finding_list_visible(teams=scope.teams, all_teams=scope.all_teams).filter(
        last_seen_at__gte=win.start, first_seen_at__lt=win.end
    )
    if status != "all":
        listed = listed.filter(status=status)
    rows = list(listed.order_by("-est_monthly_waste", "pk")[:200])
    summary = savings_summary(finding_list_visible(teams=scope.teams, all_teams=scope.all_teams))
    if summary["rows"]:
        context["savings"] = summary
    for f in rows:
        f.resolution_list = summary["resolutions"].get(f.pk, [])
    context["period"] = timezone.now().strftime("%Y-%m")
    judges_all, judged_teams = finding_judges(user=request.user)
    for f in rows:
        f.may_judge = judges_all or (f.team_id is not None and f.team_id in judged_teams)
    table = Table(
        "findings",
        "",
        [
            Col("pattern", "Pattern"),
            Col("scope", "Scope"),
            Col("team", "Team"),
            Col("status", "Status"),
            Col("severity", "Severity"),
            Col("waste", "Waste in its window", num=True),
            Col("monthly", "Save up to a month", num=True),
            Col("currency", "Currency"),
            Col("recommendation", "Recommendation"),
        ],
        [
            {
                "pattern": f.pattern,
                "scope": f"{f.scope_kind} {f.scope_key}",
                "team": f.team.slug if f.team else "",
                "status": f.status,
                "severity": f.severity,
                "waste": money_str(f.waste),
                "monthly": money_str(f.est_monthly_waste),
                "currency": f.currency,
                "recommendation": f.recommendation,
            }
            for f in rows
        ],
    )
    context.update({"win": win, "findings": rows})
    return _page(request, "dashboard/findings.html", context, tables=[table])


@login_required
def savings_statement_download(request: HttpRequest) -> HttpResponse:
    """The month's savings statement as CSV (``period=YYYY-MM``, this month by default):
    the findings the person sees, per team and pattern, with a total line per row."""
    scope = _scope(request)
    period = request.GET.get("period") or timezone.now().strftime("%Y-%m")
    visible = finding_list_visible(teams=scope.teams, all_teams=scope.all_teams)
    try:
        statement = savings_statement(visible, period=period)
    except ValueError as exc:
        return HttpResponse(f"period: {exc}", status=400, content_type="text/plain")
    response = HttpResponse(
        savings_statement_csv(statement), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="frameops-savings-{period}.csv"'
    return response


@login_required
@require_POST
def finding_judge(request: HttpRequest, pk: int) -> HttpResponse:
    scope = _scope(request)
    finding = get_object_or_404(
        finding_list_visible(teams=scope.teams, all_teams=scope.all_teams), pk=pk
    )
    if not finding_may_judge(user=request.user, finding=finding):
        return HttpResponse("Only the team's managers and admins judge its findings.", status=403)
    status = request.POST.get("status", "")
    if status not in (FindingStatus.ACKNOWLEDGED, FindingStatus.RESOLVED, FindingStatus.OPEN):
        return HttpResponse(
            f"status: {status[:20]!r} is not acknowledged, resolved or open", status=400
        )
    finding_status_set(finding=finding, status=status, user=request.user.get_username())
    back = request.POST.get("back", "open")
    if back not in FindingStatus.values and back != "all":
        back = "open"
    return redirect(f"{reverse('dashboard:findings')}?status={back}")


# --- planner -------------------------------------------------------------------------------

SHAPES = {"wan-1.3b": "Wan 2.1 1.3B", "wan-14b": "Wan 2.1 14B", "hunyuan": "HunyuanVideo (13B)"}
OFFLOADS = {"": "none", "model": "model between phases", "model,text-encoder":
            "model between phases, text encoder on the CPU", "text-encoder":
            "text encoder on the CPU"}  # fmt: skip
GPU_COUNTS = {"1": "1", "1,2,4,8": "1, 2, 4 and 8", "2": "2", "4": "4", "8": "8"}
LINKS = {"": "NVLink where the GPU has it", "pcie": "PCIe", "nvlink": "NVLink"}
PARALLEL = {"ulysses": "Ulysses (sequence)", "ring": "ring attention", "cfg": "CFG, then Ulysses"}


@login_required
def planner(request: HttpRequest) -> HttpResponse:
    """The what-if of ``python -m inference plan`` (the same code; it imports no torch).
    It has no window: it prices at the rates loaded now."""
    from inference.pipeline import Setup, pipeline_get
    from inference.plan import Workload, plan

    form = {
        "shape": request.GET.get("shape", "wan-1.3b"),
        "height": request.GET.get("height", "480"),
        "width": request.GET.get("width", "832"),
        "frames": request.GET.get("frames", "81"),
        "steps": request.GET.get("steps", "50"),
        "regen_rate": request.GET.get("regen_rate", "0.2"),
        "gpus": request.GET.get("gpus", "1"),
        "interconnect": request.GET.get("interconnect", ""),
        "offload": request.GET.get("offload", ""),
        "parallel": request.GET.get("parallel", "ulysses"),
    }
    context: dict[str, Any] = {
        "form": form, "shapes": SHAPES, "offloads": OFFLOADS, "gpu_counts": GPU_COUNTS,
        "links": LINKS, "parallels": PARALLEL,
    }  # fmt: skip
    errors = {}
    values: dict[str, Any] = {}
    for name, low, high, cast in (
        ("height", 64, 2160, int),
        ("width", 64, 3840, int),
        ("frames", 1, 1025, int),
        ("steps", 1, 200, int),
        ("regen_rate", 0.0, 0.95, float),
    ):
        try:
            values[name] = cast(form[name])
        except ValueError:
            errors[name] = f"{form[name][:20]!r} is not a number"
            continue
        if not low <= values[name] <= high:
            errors[name] = f"must be between {low} and {high}"
    for name, choices in (("shape", SHAPES), ("gpus", GPU_COUNTS), ("interconnect", LINKS),
                          ("offload", OFFLOADS), ("parallel", PARALLEL)):  # fmt: skip
        if form[name] not in choices:
            errors[name] = f"use one of {', '.join(repr(c) for c in choices)}"
    workload = None
    if not errors:
        try:
            workload = Workload(pipeline_get(form["shape"]), values["height"], values["width"],
                                values["frames"], steps=values["steps"],
                                regen_rate=values["regen_rate"])  # fmt: skip
        except ValueError as exc:  # a clip size the VAE cannot take, named by the planner
            errors["frames" if "frames" in str(exc) else "height"] = str(exc)
    if errors or workload is None:
        context["errors"] = errors
        return _page(request, "dashboard/planner.html", context, status=400)
    offload = frozenset(m for m in form["offload"].split(",") if m)
    setups = [Setup(gpus=int(n), interconnect=form["interconnect"] or None, offload=offload,
                    parallel=form["parallel"]) for n in form["gpus"].split(",")]  # fmt: skip
    planned = plan(workload, planner_prices(), setups=setups)
    rows = [
        {
            **r.as_dict(),
            "vram": f"{r.vram_bytes / 1e9:.1f} GB",
            "peak": f"{r.peak_bytes_per_gpu / 1e9:.1f} GB",
            "fits_text": "yes" if r.fits else "no",
            "time": f"{r.seconds_per_clip:,.0f} s" if r.seconds_per_clip else "-",
            "speedup_text": f"{r.speedup:.2f}x ({r.efficiency:.0%} efficient)"
            if r.gpus > 1
            else "-",
            "price": f"${r.price_per_gpu_hour:,.2f}" if r.price_per_gpu_hour is not None else "-",
            "per_usable_second": (
                f"${r.cost_per_usable_second:,.4f}" if r.cost_per_usable_second is not None else "-"
            ),
        }
        for r in planned
    ]
    table = Table(
        "plan",
        "",
        [
            Col("gpu", "GPU"),
            Col("gpus", "GPUs", num=True),
            Col("interconnect", "Link"),
            Col("vram", "VRAM", num=True),
            Col("peak", "Predicted peak per GPU", num=True),
            Col("fits_text", "Fits"),
            Col("time", "Time per clip", num=True),
            Col("speedup_text", "Speedup (efficiency)", num=True),
            Col("price", "Price per GPU-hour", num=True),
            Col("per_usable_second", "Cost per usable second", num=True),
        ],
        rows,
    )
    context.update(
        {
            "charts": {
                "plan": Chart(
                    "plan-chart", figures.planner_costs(rows).to_json(), table, folded=False
                )
            },
            "tokens": workload.tokens,
            "assumptions": list(dict.fromkeys(n for r in planned for n in r.assumptions)),
        }
    )
    return _page(request, "dashboard/planner.html", context)


# --- placement -----------------------------------------------------------------------------


@login_required
def placement_page(request: HttpRequest) -> HttpResponse:
    """Where each workload should run: today against every GPU at every loaded rate and
    every video API offering, per usable second (``finops.placement``)."""
    from finops.placement.selectors import placement

    scope = _scope(request)
    slug = request.GET.get("team", "")
    context: dict[str, Any] = {"team_choices": scope.teams, "team": slug, "keep": {"team": slug}}
    try:
        win = window_from(request, default="30d")
        context["win"] = win
        teams = scope.teams
        if slug:
            teams = teams.filter(slug=slug)
            if not teams.exists():
                raise QueryError("team", f"{slug[:40]!r} is not a team you can see")
    except QueryError as exc:
        return _error(request, "dashboard/placement.html", context, exc)
    workloads = placement(teams=teams, start=win.start, end=win.end)
    rows = []
    for w in workloads:
        for o in w.options:
            rows.append({
                "team": w.team, "model": w.model_name, "version": w.model_version or "-",
                "resolution": w.resolution, "where": o.label, "kind": o.kind,
                "cost_per_usable_second": o.cost_per_usable_second,
                "monthly_cost": o.monthly_cost, "monthly_saving": o.monthly_saving,
                "status": "today" if o.kind == "today" else "may replace" if o.recommendable
                else "does not fit" if o.kind == "gpu" else "for reference",
                "assumptions": "; ".join(o.assumptions),
            })  # fmt: skip
    table = Table(
        "placement",
        "",
        [
            Col("team", "Team"), Col("model", "Model"), Col("version", "Version"),
            Col("resolution", "Resolution"), Col("where", "Where"), Col("status", "Status"),
            Col("cost_per_usable_second", "USD per usable second", num=True),
            Col("monthly_cost", "USD a month", num=True),
            Col("monthly_saving", "USD saved a month", num=True), Col("assumptions", "Assumes"),
        ],
        rows,
    )  # fmt: skip
    context.update({
        "win": win, "workloads": workloads,
        "charts": {"placement": Chart("placement-chart",
                                      figures.placement_costs(workloads).to_json(), table)}
        if workloads else {},
    })  # fmt: skip
    return _page(request, "dashboard/placement.html", context, tables=[] if workloads else [table])


# --- fleet ---------------------------------------------------------------------------------

REASONS = {
    "throttle_power_cap_s": "power cap (0x4)",
    "throttle_hw_slowdown_s": "hw slowdown (0x8)",
    "throttle_sw_thermal_s": "sw thermal (0x20)",
    "throttle_hw_thermal_s": "hw thermal (0x40)",
    "throttle_power_brake_s": "power brake (0x80)",
}
FORBIDDEN_FLEET = (
    "The fleet views show every team's GPUs: they are for admins (and callers who see every "
    "team). Your teams' costs are on the overview."
)


def _fleet_scope(request: HttpRequest, template: str) -> HttpResponse | Scope:
    scope = _scope(request)
    if not scope.all_teams:
        return _page(request, template, {"forbidden": FORBIDDEN_FLEET}, status=403)
    return scope


def _h(seconds: float | None) -> float:
    return (seconds or 0.0) / 3600


@login_required
def fleet(request: HttpRequest) -> HttpResponse:
    """Node-by-hour utilisation, throttled time by reason, memory pressure and idle by node
    and GPU model (hour rollups, one grouped query each), idle cost by node (daily ledger
    summary) and storage await by device."""
    scope = _fleet_scope(request, "dashboard/fleet.html")
    if isinstance(scope, HttpResponse):
        return scope
    context: dict[str, Any] = {"switch_teams": scope.teams}
    try:
        win = window_from(request, default="24h")
    except QueryError as exc:
        return _error(request, "dashboard/fleet.html", context, exc)
    context["win"] = win
    hours = GpuHour.objects.filter(ts__gte=win.start, ts__lt=win.end, gpu__mig_parent__isnull=True)
    cells = list(
        hours.values("gpu__node__hostname", "ts")
        .annotate(util=Avg("util_mean_pct"))
        .order_by("gpu__node__hostname", "ts")
    )
    nodes = sorted({c["gpu__node__hostname"] for c in cells})
    stamps = sorted({c["ts"] for c in cells})
    grid = {(c["gpu__node__hostname"], c["ts"]): c["util"] for c in cells}
    sums = {k: Sum(k) for k in (*REASONS, "busy_s", "covered_s", "mem_pressure_s")}
    totals = {
        r["gpu__node__hostname"]: r for r in hours.values("gpu__node__hostname").annotate(**sums)
    }
    idle_cost = dict(
        LedgerDay.objects.filter(
            day__gte=win.start.replace(hour=0, minute=0, second=0, microsecond=0),
            day__lt=win.end,
            basis=Basis.ALLOCATION,
            bucket=Bucket.IDLE,
        )
        .values("node__hostname")
        .annotate(total=Sum("amount"))
        .values_list("node__hostname", "total")
    )
    node_rows = []
    for n in nodes:
        t = totals[n]
        node_rows.append(
            {
                "node": n,
                "href": f"{reverse('dashboard:node', args=[n])}?{win.qs}",
                "covered_h": _h(t["covered_s"]),
                "busy_h": _h(t["busy_s"]),
                "idle_h": _h((t["covered_s"] or 0) - (t["busy_s"] or 0)),
                "idle_share_pct": _pct((t["covered_s"] or 0) - (t["busy_s"] or 0), t["covered_s"]),
                "idle_cost": money_str(idle_cost[n]) if idle_cost.get(n) is not None else None,
                "mem_pressure_pct": _pct(t["mem_pressure_s"], t["covered_s"]),
                **{k: _h(t[k]) for k in REASONS},
            }
        )
    by_model = [
        {
            "gpu_model": r["gpu__model__name"] or "(unknown)",
            "gpus": r["gpus"],
            "covered_h": _h(r["covered_s"]),
            "busy_h": _h(r["busy_s"]),
            "idle_h": _h((r["covered_s"] or 0) - (r["busy_s"] or 0)),
            "idle_share_pct": _pct((r["covered_s"] or 0) - (r["busy_s"] or 0), r["covered_s"]),
            "mem_pressure_pct": _pct(r["mem_pressure_s"], r["covered_s"]),
        }
        for r in hours.values("gpu__model__name")
        .annotate(
            gpus=Count("gpu", distinct=True),
            covered_s=Sum("covered_s"),
            busy_s=Sum("busy_s"),
            mem_pressure_s=Sum("mem_pressure_s"),
        )
        .order_by("gpu__model__name")
    ]
    storage = [
        {
            "device": f"{r['device__node__hostname']}:{r['device__name']}",
            "kind": r["device__kind"],
            "await_mean_ms": r["await_mean"],
            "await_max_ms": r["await_max"],
            "util_mean_pct": r["util_mean"],
            "samples": r["samples"],
        }
        for r in StorageSample.objects.filter(ts__gte=win.start, ts__lt=win.end)
        .values("device__node__hostname", "device__name", "device__kind")
        .annotate(
            await_mean=Avg("await_ms"),
            await_max=Max("await_ms"),
            util_mean=Avg("util_pct"),
            samples=Count("id"),
        )
        .order_by("-await_mean")[:100]
    ]
    hour_labels = [f"{h:%m-%d %H:00}" for h in stamps]
    reason_cols = [Col(k, f"{label} GPU-h", num=True, places=2) for k, label in REASONS.items()]
    node_table = Table(
        "fleet",
        "By node",
        [
            Col("node", "Node", link="href"),
            Col("covered_h", "Covered GPU-h", num=True, places=1),
            Col("busy_h", "Busy GPU-h", num=True, places=1),
            Col("idle_h", "Idle GPU-h", num=True, places=1),
            Col("idle_share_pct", "Idle (%)", num=True),
            Col("idle_cost", "Idle cost (USD)", num=True),
            Col("mem_pressure_pct", "Memory pressure (% of time)", num=True),
            *reason_cols,
        ],
        node_rows,
        empty="No GPU telemetry in this window: run the host agent (python -m collectors.agent) "
        "or set PROMETHEUS_URL for the DCGM pull (docs/telemetry.md).",
        note="Idle cost is for the whole UTC days the window touches (the daily ledger summary).",
    )
    model_table = Table(
        "gpu-models",
        "By GPU model",
        [
            Col("gpu_model", "GPU model"),
            Col("gpus", "GPUs", num=True),
            Col("covered_h", "Covered GPU-h", num=True, places=1),
            Col("busy_h", "Busy GPU-h", num=True, places=1),
            Col("idle_h", "Idle GPU-h", num=True, places=1),
            Col("idle_share_pct", "Idle (%)", num=True),
            Col("mem_pressure_pct", "Memory pressure (% of time)", num=True),
        ],
        by_model,
        empty="No GPU telemetry in this window.",
    )
    heat_rows = [
        {"node": c["gpu__node__hostname"], "hour": f"{c['ts']:%Y-%m-%d %H:00}", "util": c["util"]}
        for c in cells
    ]
    charts = {}
    if nodes:
        charts = {
            "heatmap": Chart(
                "heatmap",
                figures.utilisation_heatmap(
                    nodes, hour_labels, [[grid.get((n, h)) for h in stamps] for n in nodes]
                ).to_json(),
                Table(
                    "utilisation",
                    "",
                    [
                        Col("node", "Node"),
                        Col("hour", "Hour (UTC)"),
                        Col("util", "Mean SM %", num=True, places=1),
                    ],
                    heat_rows,
                ),
            ),
            "throttle": Chart(
                "throttle",
                figures.throttle_by_reason(
                    nodes,
                    {label: [totals[n][k] or 0 for n in nodes] for k, label in REASONS.items()},
                ).to_json(),
                Table("throttle-by-node", "", [Col("node", "Node"), *reason_cols], node_rows),
            ),
        }
    if storage:
        charts["storage"] = Chart(
            "storage-chart",
            figures.storage_await(storage).to_json(),
            Table(
                "storage",
                "",
                [
                    Col("device", "Device"),
                    Col("kind", "Kind"),
                    Col("await_mean_ms", "Mean await (ms)", num=True, places=2),
                    Col("await_max_ms", "Max await (ms)", num=True, places=2),
                    Col("util_mean_pct", "Mean busy (%)", num=True, places=1),
                    Col("samples", "Samples", num=True),
                ],
                storage,
            ),
        )
    by_model = funnel(teams=scope.teams, all_teams=True, start=win.start, end=win.end,
                      by="gpu_model")  # fmt: skip
    funnel_table = Table(
        "funnel-by-gpu-model",
        "Where each paid dollar went, by GPU model",
        [Col("gpu_model", "GPU model"), *[Col(s, f"{label} (USD)", num=True)
         for s, label in figures.FUNNEL_LABELS.items()], Col("yield", "Yield (%)", num=True)],
        [{"gpu_model": r["name"], **{st["stage"]: st["cost"] for st in r["stages"]},
          "yield": round(r["yield"] * 100, 1) if r["yield"] is not None else None}
         for r in by_model["rows"]],
        empty="No GPU time in this window.",
    )  # fmt: skip
    context.update({"charts": charts, "nodes": nodes})
    return _page(request, "dashboard/fleet.html", context,
                 tables=[node_table, model_table, funnel_table])  # fmt: skip


@login_required
def node(request: HttpRequest, hostname: str) -> HttpResponse:
    """One node's telemetry over the window (minute rollups up to two days, hour rollups
    beyond) and the jobs that held its GPUs."""
    scope = _fleet_scope(request, "dashboard/node.html")
    if isinstance(scope, HttpResponse):
        return scope
    the_node = get_object_or_404(Node.objects.select_related("site"), hostname=hostname)
    context: dict[str, Any] = {"node": the_node, "switch_teams": scope.teams}
    try:
        win = window_from(request, default="24h")
    except QueryError as exc:
        return _error(request, "dashboard/node.html", context, exc)
    context["win"] = win
    gpus = {
        g.pk: g
        for g in Gpu.objects.filter(node=the_node, mig_parent__isnull=True).select_related("model")
    }
    minutes = win.end - win.start <= timedelta(days=2)
    rollup = GpuMinute if minutes else GpuHour
    # Tuples into one frame (a day of minutes for 8 GPUs is 11,520 rows: a dict per row
    # and Python loops over them were most of the page).
    columns = ["gpu_id", "ts", "util_mean_pct", "mem_frac_mean", "power_mean_w", "temp_max_c",
               "clock_ratio_mean", *REASONS]  # fmt: skip
    frame = pd.DataFrame.from_records(
        list(
            rollup.objects.filter(gpu__in=list(gpus), ts__gte=win.start, ts__lt=win.end)
            .values_list(*columns)
            .order_by("ts", "gpu_id")
        ),
        columns=columns,
    )
    frame[columns[2:]] = frame[columns[2:]].astype(float)
    samples = len(frame)
    series: dict[str, dict[str, list[Any]]] = {}
    if samples:
        frame["mem_frac_mean"] *= 100
        frame["clock_ratio_mean"] *= 100
        stamps = frame["ts"].map(datetime.isoformat)
        for gpu_id, rows in frame.groupby("gpu_id", sort=False).groups.items():
            series[f"GPU {gpus[gpu_id].index}"] = {
                "ts": stamps[rows].tolist(),
                **{k: frame.loc[rows, k].tolist() for k in figures.NODE_SERIES},
            }
    limits = sorted({g.model.tdp_w for g in gpus.values() if g.model is not None})
    per_period = frame.groupby("ts", sort=True).agg(
        gpus=("gpu_id", "count"), util=("util_mean_pct", "mean"), power_w=("power_mean_w", "sum"),
        temp_max_c=("temp_max_c", "max"), **{k: (k, "sum") for k in REASONS},
    )  # fmt: skip
    period_rows = [
        {"ts": f"{ts:%Y-%m-%d %H:%M}", "gpus": int(r["gpus"]),
         **{k: (None if r[k] != r[k] else float(r[k]))
            for k in ("util", "power_w", "temp_max_c", *REASONS)}}
        for ts, r in zip(per_period.index, per_period.to_dict("records"), strict=True)
    ]  # fmt: skip
    throttle = {label: [p[k] for p in period_rows] for k, label in REASONS.items()}
    charts = {}
    if samples:
        table = Table(
            "telemetry",
            "",
            [
                Col("ts", "Period start (UTC)"),
                Col("gpus", "GPUs reporting", num=True),
                Col("util", "Mean SM %", num=True, places=1),
                Col("power_w", "Power, all GPUs (W)", num=True, places=0),
                Col("temp_max_c", "Hottest GPU (°C)", num=True, places=0),
                *[Col(k, f"{label} (s)", num=True, places=0) for k, label in REASONS.items()],
            ],
            period_rows,
        )
        charts = {
            "telemetry": Chart(
                "node-chart",
                figures.node_telemetry(
                    series, limits, throttle, [p["ts"] for p in period_rows]
                ).to_json(),
                table,
            )
        }
    allocations = (
        GpuAllocation.objects.filter(gpu__in=list(gpus), start__lt=win.end)
        .filter(Q(end__isnull=True) | Q(end__gt=win.start))
        .select_related("job__team", "gpu")
        .order_by("-start")
    )
    page = Paginator(allocations, 25).get_page(request.GET.get("page"))
    job_rows = [
        {
            "job": f"{a.job.source}:{a.job.external_id}",
            "team": a.job.team.slug,
            "href": f"{reverse('dashboard:team', args=[a.job.team.slug])}?{win.qs}",
            "gpu": a.gpu.index,
            "status": a.job.status,
            "model": f"{a.job.model_name} {a.job.model_version}".strip(),
            "start": f"{a.start:%Y-%m-%d %H:%M:%S}",
            "end": f"{a.end:%Y-%m-%d %H:%M:%S}" if a.end else "holding",
        }
        for a in page.object_list
    ]
    jobs = Table(
        "node-jobs",
        "Jobs that held its GPUs",
        [
            Col("job", "Job"),
            Col("team", "Team", link="href"),
            Col("gpu", "GPU", num=True),
            Col("status", "Status"),
            Col("model", "Model"),
            Col("start", "Held from (UTC)"),
            Col("end", "to"),
        ],
        job_rows,
        empty="No job held this node's GPUs in the window.",
    )
    context.update(
        {
            "charts": charts,
            "resolution": "minute" if minutes else "hour",
            "gpus": sorted(gpus.values(), key=lambda g: g.index),
            "page": page,
            "page_qs": win.qs,
        }
    )
    return _page(request, "dashboard/node.html", context, tables=[jobs])


# --- team ----------------------------------------------------------------------------------

BREAKDOWNS = {"project": "project", "model": "model", "model_version": "model version"}


@login_required
def team(request: HttpRequest, slug: str) -> HttpResponse:
    """A team's cost per usable second over time by project, model or model version, waste
    against allocation, attempts per usable clip, the most expensive clips with their
    attempts, and its jobs (filtered, paginated)."""
    scope = _scope(request)
    the_team = get_object_or_404(scope.teams, slug=slug)
    teams = Team.objects.filter(pk=the_team.pk)
    by = request.GET.get("by", "project")
    context: dict[str, Any] = {
        "team": the_team,
        "switch_teams": scope.teams,
        "current_team": the_team,
        "breakdowns": BREAKDOWNS,
        "by": by,
        "keep": {"by": by},
    }
    try:
        if by not in BREAKDOWNS:
            raise QueryError("by", f"{by[:20]!r}: use {', '.join(BREAKDOWNS)}")
        status = request.GET.get("status", "").strip()
        if status and status not in JobStatus.values:
            raise QueryError("status", f"{status[:20]!r}: use {', '.join(JobStatus.values)}")
        win = window_from(request)
    except QueryError as exc:
        return _error(request, "dashboard/team.html", context, exc)
    context["win"] = win
    daily = AllocationQuery.from_params({"window": win.query, "aggregate": by, "step": "1d"})
    usage = AllocationQuery.from_params({"window": win.query, "aggregate": by, "basis": "usage"})
    by_day = allocation_report(query=daily, teams=teams, all_teams=False)
    used = allocation_report(query=usage, teams=teams, all_teams=False)["steps"][0]["rows"]
    currency = by_day["currency"]
    money = f"({currency})"
    # Held GPU time is what the usage basis splits into used and waste.
    breakdown = []
    for r in used:
        held = Decimal(r["gpu_cost"]) + Decimal(r["waste_cost"])
        name = "(none: storage, energy)" if r["name"] == "__none__" else r["name"]
        breakdown.append(
            {**r, "name": name, "held": money_str(held),
             "waste_share_pct": _pct(Decimal(r["waste_cost"]), held)}
        )  # fmt: skip
    clip_summary = clip_costs(teams=teams, start=win.start, end=win.end, limit=5)
    attempts, usable_clips = clip_summary["attempts"], clip_summary["usable_clips"]
    expensive = [{**c, "cost": money_str(c["cost"])} for c in clip_summary["clips"]]
    jobs = RenderJob.objects.filter(team=the_team).select_related("clip")
    filters = {k: request.GET.get(k, "").strip() for k in ("status", "project", "model")}
    if filters["status"]:
        jobs = jobs.filter(status=filters["status"])
    if filters["project"]:
        jobs = jobs.filter(project=filters["project"])
    if filters["model"]:
        jobs = jobs.filter(model_name=filters["model"])
    # Jobs that ran in the window, and those still queued then.
    ran = Q(started_at__lt=win.end) & (Q(finished_at__isnull=True) | Q(finished_at__gte=win.start))
    waiting = Q(started_at__isnull=True) & (Q(queued_at__isnull=True) | Q(queued_at__lt=win.end))
    jobs = jobs.filter(ran | waiting).order_by(F("started_at").desc(nulls_first=True), "-pk")
    page = Paginator(jobs, 25).get_page(request.GET.get("page"))

    def job_row(j: RenderJob) -> dict[str, Any]:
        return {
            "job": f"{j.source}:{j.external_id}",
            "status": j.status,
            "project": j.project,
            "model": f"{j.model_name} {j.model_version}".strip(),
            "clip": j.clip.external_id if j.clip else None,
            "usable": j.usable,
            "finished": f"{j.finished_at:%Y-%m-%d %H:%M}" if j.finished_at else None,
        }

    label = BREAKDOWNS[by].capitalize()
    breakdown_table = Table(
        "breakdown",
        f"By {BREAKDOWNS[by]}: usage basis (used time) and the held time left unused (waste)",
        [
            Col("name", label),
            Col("gpu_cost", f"Used {money}", num=True),
            Col("waste_cost", "Waste", num=True),
            Col("held", "GPU time held", num=True),
            Col("waste_share_pct", "Waste of held (%)", num=True),
            Col("regeneration_cost", "Regeneration", num=True),
            Col("total_cost", "Total", num=True),
            Col("usable_seconds", "Usable s", num=True, places=1),
            Col("cost_per_usable_second", f"Per usable second {money}", num=True),
        ],
        breakdown,
        empty=EMPTY_COST,
    )
    clip_table = Table(
        "clips",
        "Most expensive clips",
        [
            Col("clip__external_id", "Clip"),
            Col("project", "Project"),
            Col("model_name", "Model"),
            Col("attempts", "Attempts", num=True),
            Col("usable", "Usable attempts", num=True),
            Col("cost", f"Cost {money}", num=True),
        ],
        expensive,
        empty="No clips in this window.",
    )
    job_columns = [
        Col("job", "Job"),
        Col("status", "Status"),
        Col("project", "Project"),
        Col("model", "Model"),
        Col("clip", "Clip"),
        Col("usable", "Usable"),
        Col("finished", "Finished (UTC)"),
    ]
    job_table = Table(
        "jobs",
        "Jobs",
        job_columns,
        [job_row(j) for j in page.object_list],
        empty="No jobs yet: send job events to POST /api/v1/jobs, see docs/costing.md.",
        csv_rows=lambda: (job_row(j) for j in jobs.iterator(chunk_size=2000)),
    )
    per_day = [
        {"day": s["start"][:10], "name": r["name"], "total_cost": r["total_cost"],
         "usable_seconds": r["usable_seconds"],
         "cost_per_usable_second": r["cost_per_usable_second"]}
        for s in by_day["steps"] for r in s["rows"]
    ]  # fmt: skip
    charts = {}
    if used:
        charts = {
            "trend": Chart(
                "team-chart",
                figures.cost_per_usable_second_by(
                    by_day["steps"], currency, BREAKDOWNS[by]
                ).to_json(),
                Table(
                    "per-day",
                    "",
                    [
                        Col("day", "Day (UTC)"),
                        Col("name", label),
                        Col("total_cost", f"Total {money}", num=True),
                        Col("usable_seconds", "Usable s", num=True, places=1),
                        Col("cost_per_usable_second", f"Per usable second {money}", num=True),
                    ],
                    per_day,
                ),
            ),
            "waste": Chart(
                "waste-chart",
                figures.waste_against_allocation(breakdown, currency, BREAKDOWNS[by]).to_json(),
                Table("waste", "", breakdown_table.columns, breakdown),
            ),
        }
    page_params = {**filters, "by": by}
    context.update(
        {
            "charts": charts,
            "currency": currency,
            "attempts_per_clip": round(attempts / usable_clips, 2) if usable_clips else None,
            "clip_count": clip_summary["count"],
            "usable_clips": usable_clips,
            "page": page,
            "filters": filters,
            "statuses": JobStatus.choices,
            "page_qs": f"{win.qs}&{urlencode(page_params)}",
        }
    )
    return _page(
        request, "dashboard/team.html", context, tables=[breakdown_table, clip_table, job_table]
    )
