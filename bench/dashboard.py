"""Dashboard benchmark: server time of every page over the attribution benchmark's month,
at a tenth of the jobs and at all of them: a page's cost should follow the rows it shows,
not the jobs in its window.

Builds the month of bench/attribution.py (512 GPUs, 50 teams, minute telemetry for the
first days; here each team's jobs are attempts at clips) twice, with ``--jobs / 10`` and
``--jobs`` jobs (1,000,000 by default), computes its ledger, adds findings and budgets,
then requests each page 20 times through the Django test client signed in as an admin (who
sees every team: the largest pages) and prints each page's p95 at both sizes,
`page_p95_max_ms` at the full size (target <= 300), `page_growth_10x_jobs` = that over the
tenth's (target <= 1.5) and, as the baseline measured in the same run, the p95 of
GET /api/v1/allocation for the month by team: `ratio_vs_allocation_api`.

    .venv/bin/python bench/dashboard.py [--jobs 1000000] [--gpus 512] [--teams 50] [--days 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _month import month_arguments, month_build, month_ledger
from _setup import bench_database

REQUESTS = 20


def _p95(client, path: str, params: dict[str, str], **headers: str) -> float:  # type: ignore[no-untyped-def]
    latencies = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(path, params, **headers)
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.content[:300])
    return statistics.quantiles(latencies, n=20)[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    month_arguments(parser)
    parser.add_argument("--telemetry-days", type=int, default=3)
    parser.add_argument(
        "--profile", action="append", default=[], metavar="PAGE",
        help="print a cProfile of one request of PAGE (repeatable) before timing; "
        "measures the full size only",
    )  # fmt: skip
    args = parser.parse_args()

    if args.profile:  # a profiling run: the full size only, no figures
        _measure(args, args.jobs)
        return
    sizes = [max(args.jobs // 10, 1), args.jobs]
    results = [_measure(args, jobs) for jobs in sizes]
    small, large = results
    growth = large["page_p95_max_ms"] / small["page_p95_max_ms"]
    figures = {
        "bench": "dashboard",
        "jobs": large["jobs"],
        "gpus": large["gpus"],
        "teams": args.teams,
        "days": args.days,
        **{k: v for k, v in large.items() if k.endswith("_p95_ms")},
        "page_p95_max_ms": large["page_p95_max_ms"],
        "page_p95_max_ms_tenth_jobs": small["page_p95_max_ms"],
        "jobs_tenth": small["jobs"],
        "page_growth_10x_jobs": round(growth, 2),
        "allocation_api_p95_ms": large["allocation_api_p95_ms"],
        "ratio_vs_allocation_api": round(
            large["page_p95_max_ms"] / large["allocation_api_p95_ms"], 2
        ),
        "target_page_p95_max_ms": 300,
        "target_page_growth_10x_jobs": 1.5,
    }
    print(f"slowest page p95: {small['page_p95_max_ms']:.0f} ms at {small['jobs']:,} jobs, "
          f"{large['page_p95_max_ms']:.0f} ms at {large['jobs']:,} (target <= 300): "
          f"x{growth:.2f} for 10x the jobs (target <= 1.5)")  # fmt: skip
    print(json.dumps(figures))


def _measure(args: argparse.Namespace, jobs: int) -> dict[str, float]:
    """Build a month of ``jobs`` jobs and time every page on it."""
    with bench_database("dashboard"):
        from django.contrib.auth import get_user_model
        from django.test import Client

        from finops.accounts.models import Team
        from finops.accounts.services import api_key_create
        from finops.insights.models import Finding, Pattern

        t: dict[str, float] = {}
        month = month_build(
            jobs=jobs, gpus=args.gpus, teams=args.teams, days=args.days,
            telemetry_days=args.telemetry_days, t=t, clips=True,
        )  # fmt: skip
        month_ledger(month, workers=args.workers, t=t)
        Team.objects.update(monthly_budget=Decimal("40000"))
        patterns = list(Pattern.values)
        Finding.objects.bulk_create(
            Finding(pattern=patterns[i % len(patterns)], scope_kind="team",
                    scope_key=f"{team.slug}:{i}", team=team, window_start=month.end - timedelta(days=1),
                    window_end=month.end, dedup_key=f"bench-{i}", first_seen_at=month.end - timedelta(days=1),
                    last_seen_at=month.end, waste=Decimal(10 + i), est_monthly_waste=Decimal(300 + i),
                    recommendation="A priced fix.", evidence={"share": 0.4}, action={"monthly_saving": 300 + i})
            for i, team in enumerate(month.teams * 4)
        )  # fmt: skip
        admin = get_user_model().objects.create_superuser("bench", "bench@example.com", "pw")
        client = Client(HTTP_HOST="localhost")
        client.force_login(admin)
        window = {"window": f"{month.start.isoformat()},{month.end.isoformat()}"}
        # A day of minute rollups (the node page draws minutes up to two days).
        telemetry = {
            "window": f"{month.start.isoformat()},{(month.start + timedelta(days=1)).isoformat()}"
        }
        team = month.teams[0].slug
        pages = {
            "overview": ("/", window),
            "team": (f"/teams/{team}/", window),
            "team_by_model_version": (f"/teams/{team}/", {**window, "by": "model_version"}),
            "fleet": ("/fleet/", window),
            "node": ("/nodes/gpu-000/", window),
            "node_minutes": ("/nodes/gpu-000/", telemetry),
            "findings": ("/findings/", {**window, "status": "all"}),
            "planner": ("/planner/", {"shape": "wan-14b", "height": "720", "width": "1280"}),
        }
        for name in args.profile:
            import cProfile
            import pstats

            path, params = pages[name]
            client.get(path, params)  # warm
            profiler = cProfile.Profile()
            profiler.runcall(client.get, path, params)
            print(f"--- profile of {name} ---")
            stats = pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative")
            stats.print_stats(r"finops/|plotly|template/base|json|psycopg/connection", 40)
        p95 = {}
        for name, (path, params) in pages.items():
            p95[name] = _p95(client, path, params)
            print(f"  {name}: p95 {p95[name]:.0f} ms over {REQUESTS} requests", flush=True)
        _, key = api_key_create(name="bench", scopes=["billing:read"])
        api = _p95(client, "/api/v1/allocation", {**window, "aggregate": "team"},
                   HTTP_AUTHORIZATION=f"Bearer {key}")  # fmt: skip
        print(f"  baseline GET /api/v1/allocation, month by team: p95 {api:.0f} ms")
        return {
            "jobs": month.jobs,
            "gpus": len(month.gpu_ids),
            **{f"{name}_p95_ms": round(v, 1) for name, v in p95.items()},
            "page_p95_max_ms": round(max(p95.values()), 1),
            "allocation_api_p95_ms": round(api, 1),
        }


if __name__ == "__main__":
    main()
