"""Weekly report benchmark: render every team's report for one week of the attribution
benchmark's month (512 GPUs, 1,000,000 jobs, 50 teams; each team's jobs are attempts at
clips), the whole message as it is sent: figures, two PNG charts, text and HTML, the CSV.

Prints each report's time, `render_p95_ms` (target <= 500), `render_all_s`, and as the
baseline measured in the same run the p95 of the report's main read alone (the team's
allocation report for the week): `ratio_vs_allocation_report`.

    .venv/bin/python bench/reports.py [--jobs 1000000] [--gpus 512] [--teams 50] [--days 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _month import month_arguments, month_build, month_ledger
from _setup import bench_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    month_arguments(parser)
    parser.add_argument("--week", default="2026-10-05", help="a Monday inside the month")
    args = parser.parse_args()

    with bench_database("reports"):
        from finops.costing.selectors import allocation_report
        from finops.reports.content import Scope, Week, week_query, weekly_report
        from finops.reports.models import ReportSubscription
        from finops.reports.services import report_build

        t: dict[str, float] = {}
        month = month_build(
            jobs=args.jobs, gpus=args.gpus, teams=args.teams, days=args.days,
            telemetry_days=0, t=t, clips=True,
        )  # fmt: skip
        month_ledger(month, workers=args.workers, t=t)
        week = Week(date.fromisoformat(args.week), "UTC")
        renders, reads = [], []
        started_all = time.perf_counter()
        for team in month.teams:
            subscription = ReportSubscription(
                email=f"{team.slug}@example.com", team=team, pk=team.pk
            )
            started = time.perf_counter()
            built = report_build(subscription, weekly_report(Scope([team], False), week))
            built.mime.as_bytes()
            renders.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            allocation_report(query=week_query(week, "team"), teams=[team], all_teams=False)
            reads.append((time.perf_counter() - started) * 1000)
            print(
                f"  {team.slug}: {renders[-1]:.0f} ms ({len(built.mime.as_bytes()) // 1024} KiB)",
                flush=True,
            )
        render_all = time.perf_counter() - started_all - sum(reads) / 1000
        p95 = statistics.quantiles(renders, n=20)[18]
        read_p95 = statistics.quantiles(reads, n=20)[18]
        figures = {
            "bench": "reports",
            "jobs": month.jobs,
            "gpus": len(month.gpu_ids),
            "teams": args.teams,
            "week": args.week,
            "render_p95_ms": round(p95, 1),
            "render_all_s": round(render_all, 2),
            "allocation_report_p95_ms": round(read_p95, 1),
            "ratio_vs_allocation_report": round(p95 / read_p95, 2),
            "target_render_p95_ms": 500,
        }
        print(f"  render p95 {p95:.0f} ms (target <= 500), all {render_all:.1f} s; "
              f"the week's allocation report alone p95 {read_p95:.0f} ms")  # fmt: skip
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
