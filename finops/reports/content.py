"""The weekly report's figures for one recipient: read through the same selectors as the
API and the dashboard (the allocation report, clip costs, month burn, findings), scoped
to the teams the recipient may see, over the week Monday to Sunday in their time zone."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from finops.accounts.models import Team
from finops.accounts.selectors import team_list_visible, user_sees_every_team
from finops.costing.models import DirtyWindow
from finops.costing.money import money_str
from finops.costing.selectors import AllocationQuery, allocation_report, clip_costs, month_burn
from finops.fleet.models import Gpu
from finops.insights.models import Finding, FindingStatus
from finops.insights.selectors import finding_list_visible, realized_between
from finops.telemetry.models import GpuHour


@dataclass(frozen=True)
class Week:
    """Monday 00:00 to the next Monday 00:00 in ``zone`` (seven local days: 167 or 169
    hours across a daylight-saving change)."""

    monday: date
    zone: str

    @property
    def start(self) -> datetime:
        return datetime.combine(self.monday, time(), zoneinfo.ZoneInfo(self.zone)).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(
            self.monday + timedelta(days=7), time(), zoneinfo.ZoneInfo(self.zone)
        ).astimezone(UTC)

    @property
    def window(self) -> str:
        """The ``window`` parameter of the API and the dashboard for this week."""
        return f"{self.start.isoformat()},{self.end.isoformat()}"

    def before(self, weeks: int = 1) -> Week:
        return Week(self.monday - timedelta(days=7 * weeks), self.zone)

    def label(self) -> str:
        last = self.monday + timedelta(days=6)
        return f"{self.monday:%a %d %b} \N{EN DASH} {last:%a %d %b %Y} ({self.zone})"


def week_last_full(now: datetime, zone: str) -> Week:
    """The last week that ended before ``now`` in ``zone``."""
    local = now.astimezone(zoneinfo.ZoneInfo(zone)).date()
    this_monday = local - timedelta(days=local.weekday())
    return Week(this_monday - timedelta(days=7), zone)


@dataclass(frozen=True)
class Scope:
    teams: list[Team]
    all_teams: bool

    @property
    def label(self) -> str:
        if self.all_teams:
            return "all teams"
        if len(self.teams) == 1:
            return self.teams[0].slug
        return f"{len(self.teams)} teams"


def recipient_scope(*, user: Any, team: Team | None) -> Scope:
    """A team's members see their teams; admins and finance (and superusers) every team; an
    address an admin subscribed without a user sees what the subscription names."""
    everything = list(Team.objects.order_by("slug"))
    if user is None:
        sees_all = True
        visible = everything
    else:
        sees_all = user_sees_every_team(user=user)
        visible = everything if sees_all else list(team_list_visible(user=user))
    if team is not None:
        if team.pk not in {t.pk for t in visible}:
            return Scope([], False)
        return Scope([team], sees_all and len(everything) == 1)
    return Scope(sorted(visible, key=lambda t: t.slug), sees_all)


def data_gaps(week: Week, *, now: datetime | None = None) -> list[str]:
    """What is not final yet about the week: hours the ledger still has to recompute, and
    nodes whose GPUs sent no telemetry for part of it (GPUs registered before the week's
    end and not retired; hours up to now). Empty when every figure is final."""
    now = now or timezone.now()
    notes = []
    dirty = DirtyWindow.objects.filter(window_start__gte=week.start, window_start__lt=week.end)
    hours = dirty.count()
    if hours:
        notes.append(
            f"cost: {hours} hour(s) of the week are waiting to be recomputed "
            "(late job events or telemetry); totals may still change"
        )
    end = min(week.end, now)
    gpus = list(
        Gpu.objects.filter(first_seen_at__lt=end, mig_parent__isnull=True)
        .filter(Q(retired_at__isnull=True) | Q(retired_at__gt=week.start))
        .values("id", "node__hostname", "first_seen_at")
    )
    if not gpus:
        return notes
    seen = dict(
        GpuHour.objects.filter(ts__gte=week.start, ts__lt=end, covered_s__gt=0)
        .values("gpu_id")
        .annotate(hours=Count("ts"))
        .values_list("gpu_id", "hours")
    )
    missing: dict[str, list[float]] = {}
    for g in gpus:
        expected = (end - max(week.start, g["first_seen_at"])).total_seconds() / 3600
        gap = max(0.0, expected - seen.get(g["id"], 0) - 1)  # the current hour may be open
        totals = missing.setdefault(g["node__hostname"], [0.0, 0.0])
        totals[0] += gap
        totals[1] += expected
    for host, (gap, expected) in sorted(missing.items()):
        if expected and gap / expected > 0.05:
            notes.append(
                f"telemetry: node {host} sent none for {gap:.0f} of {expected:.0f} GPU-hours; "
                "its usage-basis and idle figures are provisional"
            )
    return notes


FLEET_ROWS = {"__idle__": "idle GPUs (fleet)", "__unallocated__": "busy, no job (fleet)"}


def _label(name: str) -> str:
    return FLEET_ROWS.get(name, "(none)" if name == "__none__" else name)


def _link(path: str, **params: str) -> str:
    base = settings.FRAMEOPS_BASE_URL.rstrip("/")
    return f"{base}{path}?{urlencode(params)}" if params else f"{base}{path}"


def _change(now: Decimal | None, before: Decimal | None) -> float | None:
    if now is None or before is None or not before:
        return None
    return round((float(now) / float(before) - 1) * 100, 1)


def _teams(scope: Scope) -> Any:
    return Team.objects.filter(pk__in=[t.pk for t in scope.teams])


def _rows(query: AllocationQuery, scope: Scope) -> list[dict[str, Any]]:
    report = allocation_report(query=query, teams=_teams(scope), all_teams=scope.all_teams)
    return report["steps"][0]["rows"]


def week_query(week: Week, *aggregate: str, step: str = "window") -> AllocationQuery:
    return AllocationQuery(
        start=week.start,
        end=week.end,
        aggregate=aggregate,
        step=step,
        idle="separate",
        basis="allocation",
    )


def _total(rows: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(r["total_cost"]) for r in rows), Decimal(0))


@dataclass
class WeeklyReport:
    week: Week
    scope: Scope
    currency: str
    total: Decimal
    previous: Decimal
    average_4w: Decimal | None
    usable_seconds: float
    cost_per_usable_second: Decimal | None
    regeneration: Decimal
    idle: Decimal | None
    attempts_per_clip: float | None
    teams: list[dict[str, Any]]
    projects: list[dict[str, Any]]
    movers: list[dict[str, Any]]
    burns: list[dict[str, Any]]
    findings_new: list[Finding]
    findings_open: list[Finding]
    clips: list[dict[str, Any]]
    daily: dict[str, dict[str, float]]
    allocation: list[dict[str, Any]]
    provisional: list[str] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    # Workloads with a cheaper place to run that may replace them (docs/placement.md).
    placement: list[dict[str, Any]] = field(default_factory=list)
    # Of every dollar paid for GPU time, the share on usable output (finops.costing.funnel).
    yield_share: float | None = None
    # Resolutions whose after-window ended this week, measured (docs/insights.md "Realized
    # savings"): what the fixes brought back against what they projected.
    realized: list[dict[str, Any]] = field(default_factory=list)

    @property
    def realized_total(self) -> Decimal:
        return sum((Decimal(r["realized_monthly"]) for r in self.realized), Decimal(0))

    @property
    def change(self) -> float | None:
        return _change(self.total, self.previous)

    @property
    def change_4w(self) -> float | None:
        return _change(self.total, self.average_4w)

    @property
    def savings(self) -> Decimal:
        findings = [*self.findings_new, *self.findings_open]
        return sum((f.est_monthly_waste for f in findings), Decimal(0))


def weekly_report(
    scope: Scope, week: Week, *, now: datetime | None = None, provisional: list[str] | None = None
) -> WeeklyReport:
    """Every figure of one recipient's report for ``week``."""
    now = now or timezone.now()
    by_team = _rows(week_query(week, "team"), scope)
    before = {r["name"]: r for r in _rows(week_query(week.before(), "team"), scope)}
    four = AllocationQuery(
        start=week.before(4).start, end=week.start, aggregate=("team",), step="window",
        idle="separate", basis="allocation",
    )  # fmt: skip
    four_weeks = _total(_rows(four, scope))
    by_project = _rows(week_query(week, "team", "project"), scope)
    project_before = {
        r["name"]: r for r in _rows(week_query(week.before(), "team", "project"), scope)
    }
    allocation = _rows(week_query(week, "team", "project", "model"), scope)
    # Spend per local day: daily steps where the local days are UTC days, else hours
    # summed into the recipient's days.
    utc_days = week.start.hour == week.start.minute == 0 and week.end - week.start == timedelta(
        days=7
    )
    hourly = allocation_report(
        query=week_query(week, "team", step="1d" if utc_days else "1h"),
        teams=_teams(scope),
        all_teams=scope.all_teams,
    )
    zone = zoneinfo.ZoneInfo(week.zone)
    daily: dict[str, dict[str, float]] = {}
    for step in hourly["steps"]:
        day = datetime.fromisoformat(step["start"]).astimezone(zone).strftime("%a %d")
        for r in step["rows"]:
            row = daily.setdefault(r["name"], {})
            row[day] = row.get(day, 0.0) + float(r["total_cost"])
    team_keys = {t.slug for t in scope.teams}
    total = _total(by_team)
    usable = sum(r["usable_seconds"] or 0.0 for r in by_team)
    idle_rows = [r for r in by_team if r["name"] not in team_keys]
    teams_out = []
    for r in by_team:
        was = before.get(r["name"], {})
        teams_out.append(
            {
                **r,
                "label": _label(r["name"]),
                "previous_cost": was.get("total_cost"),
                "previous_cps": was.get("cost_per_usable_second"),
                "change_pct": _change(Decimal(r["total_cost"]), _dec(was.get("total_cost"))),
                "cps_change_pct": _change(
                    _dec(r["cost_per_usable_second"]), _dec(was.get("cost_per_usable_second"))
                ),
                "link": _link(f"/teams/{r['name']}/", window=week.window)
                if r["name"] in team_keys
                else _link("/fleet/", window=week.window),
            }
        )
    projects_out = []
    for r in by_project:
        was = project_before.get(r["name"], {})
        team_slug, _, project = r["name"].partition(",")
        projects_out.append(
            {
                **r,
                "team": _label(team_slug),
                "project": _label(project) if project else "(none)",
                "previous_cost": was.get("total_cost"),
                "delta": Decimal(r["total_cost"]) - (_dec(was.get("total_cost")) or Decimal(0)),
                "change_pct": _change(Decimal(r["total_cost"]), _dec(was.get("total_cost"))),
                "cps_change_pct": _change(
                    _dec(r["cost_per_usable_second"]), _dec(was.get("cost_per_usable_second"))
                ),
            }
        )
    for name, was in project_before.items():  # projects that stopped spending move too
        if name not in {r["name"] for r in by_project}:
            team_slug, _, project = name.partition(",")
            projects_out.append({"name": name, "team": _label(team_slug),
                                 "project": _label(project) if project else "(none)",
                                 "total_cost": "0.00", "previous_cost": was["total_cost"],
                                 "delta": -Decimal(was["total_cost"]), "change_pct": -100.0,
                                 "cost_per_usable_second": None, "cps_change_pct": None,
                                 "usable_seconds": None, "regeneration_cost": "0.00"})  # fmt: skip
    movers = sorted(
        (p for p in projects_out if p["delta"] and p["name"].partition(",")[0] in team_keys),
        key=lambda p: abs(p["delta"]),
        reverse=True,
    )[:5]
    projects_out = [p for p in projects_out if p["name"] in {r["name"] for r in by_project}]
    clip_summary = clip_costs(teams=_teams(scope), start=week.start, end=week.end, limit=5)
    clips, usable_clips = clip_summary["clips"], clip_summary["usable_clips"]
    month = month_burn(scope.teams, now=now)  # one grouped query for every team
    burns = [
        {
            "team": t.slug,
            "budget": money_str(b.budget) if b.budget is not None else None,
            "spent": money_str(b.spent),
            "forecast": money_str(b.forecast),
            "forecast_pct": round(b.forecast_burn * 100, 1)
            if b.forecast_burn is not None
            else None,
        }
        for t, b in ((t, month[t.pk]) for t in scope.teams)
        if b.budget is not None
    ]
    findings = finding_list_visible(teams=_teams(scope), all_teams=scope.all_teams)
    new = list(
        findings.filter(first_seen_at__gte=week.start, first_seen_at__lt=week.end)
        .exclude(status=FindingStatus.RESOLVED)
        .order_by("-est_monthly_waste")[:10]
    )
    still_open = list(
        findings.filter(first_seen_at__lt=week.start, status=FindingStatus.OPEN).order_by(
            "-est_monthly_waste"
        )[:10]
    )
    for f in [*new, *still_open]:
        f.link = _link("/findings/", status="all", window=week.window)  # type: ignore[attr-defined]
    return WeeklyReport(
        week=week,
        scope=scope,
        currency=hourly["currency"],
        total=total,
        previous=_total(list(before.values())),
        average_4w=four_weeks / 4 if four_weeks else None,
        usable_seconds=usable,
        # Rounded as the allocation report rounds it, so the e-mail and the API agree.
        cost_per_usable_second=Decimal(money_str(total / Decimal(repr(usable))))
        if usable
        else None,
        regeneration=sum((Decimal(r["regeneration_cost"]) for r in by_team), Decimal(0)),
        idle=_total(idle_rows) if scope.all_teams else None,
        attempts_per_clip=round(clip_summary["attempts"] / usable_clips, 2)
        if usable_clips
        else None,
        teams=teams_out,
        projects=sorted(projects_out, key=lambda p: Decimal(p["total_cost"]), reverse=True),
        movers=movers,
        burns=burns,
        findings_new=new,
        findings_open=still_open,
        clips=[{**c, "cost": money_str(c["cost"])} for c in clips[:5]],
        daily=daily,
        allocation=allocation,
        provisional=list(provisional or []),
        links={
            "overview": _link("/", window=week.window),
            "findings": _link("/findings/", status="all", window=week.window),
            "placement": _link("/placement/", window=week.window),
        },
        placement=_placement(week, scope),
        yield_share=_yield(week, scope),
        realized=[
            {
                "pattern": r.finding.get_pattern_display(),
                "scope": f"{r.finding.scope_kind} {r.finding.scope_key}",
                "realized_monthly": str(r.realized_monthly),
                "projected_monthly": str(r.projected_monthly),
                "ratio": r.ratio,
            }
            for r in realized_between(findings, week.start, week.end)
        ],
    )


def _yield(week: Week, scope: Scope) -> float | None:
    from finops.costing.funnel import funnel

    body = funnel(teams=_teams(scope), all_teams=scope.all_teams, start=week.start,
                  end=week.end)  # fmt: skip
    return body["rows"][0]["yield"] if body["rows"] else None


def _placement(week: Week, scope: Scope) -> list[dict[str, Any]]:
    """The five workloads with the largest monthly saving from an option that may replace
    them (a fitting GPU at a loaded rate, or a mapped video API offering)."""
    from finops.placement.selectors import placement

    out = []
    for w in placement(teams=_teams(scope), start=week.start, end=week.end):
        better = [o for o in w.options if o.kind != "today" and o.recommendable
                  and o.monthly_saving is not None and o.monthly_saving > 0]  # fmt: skip
        if not better:
            continue
        best = max(better, key=lambda o: o.monthly_saving or 0)
        out.append({
            "workload": f"{w.team} / {w.model_name} {w.resolution}",
            "today": w.today.cost_per_usable_second, "where": best.label,
            "cost_per_usable_second": best.cost_per_usable_second,
            "monthly_saving": best.monthly_saving,
        })  # fmt: skip
    return sorted(out, key=lambda r: r["monthly_saving"], reverse=True)[:5]


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)
