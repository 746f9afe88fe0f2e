"""Attribution benchmark: a month's ledger against one SQL aggregate over the same jobs.

Builds, in a throw-away PostgreSQL database: GPUs (8 per node, rate-card priced), teams,
minute telemetry rollups (and the hours rolled up from them) for every GPU over the first
``--telemetry-days`` days, and jobs with one GPU allocation each, back to back with gaps
on every GPU (some overlapping, to exercise concurrent splits). The ledger reads those
minutes for each job's usage-basis activity. Then times:

* `ledger`: the whole month's ledger, both bases (`recompute_costs`, a UTC day at a time,
  `--workers` processes, one per CPU by default);
* `scan`: one SQL aggregate over the same allocations: GPU-seconds by team;
* `allocation_month_by_team_p95_ms`: 20 requests of GET /api/v1/allocation for the month
  by team, through the Django test client.

Prints the figures, `ratio_vs_scan` = ledger time / scan time, and a JSON line.

    .venv/bin/python bench/attribution.py [--jobs 1000000] [--gpus 512] [--teams 50] [--days 30]
        [--telemetry-days 3]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _month import month_arguments, month_build
from _setup import bench_database, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    month_arguments(parser)
    parser.add_argument(
        "--telemetry-days",
        type=int,
        default=3,
        help="days (from the first) with minute rollups for every GPU",
    )
    args = parser.parse_args()

    with bench_database("attribution"):
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        from finops.accounts.services import api_key_create

        t: dict[str, float] = {}
        month = month_build(
            jobs=args.jobs, gpus=args.gpus, teams=args.teams, days=args.days,
            telemetry_days=args.telemetry_days, t=t,
        )  # fmt: skip
        start, end, gpu_ids, telemetry_days = (
            month.start, month.end, month.gpu_ids, month.telemetry_days
        )  # fmt: skip

        with timed("scan", t), connection.cursor() as c:
            c.execute(
                'SELECT j.team_id, SUM(EXTRACT(EPOCH FROM (LEAST(a."end", %s) - GREATEST(a.start, %s)))) '
                "FROM jobs_gpuallocation a JOIN jobs_renderjob j ON j.id = a.job_id "
                'WHERE a.start < %s AND a."end" > %s GROUP BY j.team_id',
                [end, start, end, start],
            )
            scan_rows = c.fetchall()
        print(f"  scan: GPU-seconds for {len(scan_rows)} teams")

        with timed("ledger", t):
            call_command("recompute_costs", f"--from={start.isoformat()}", f"--to={end.isoformat()}",
                         f"--workers={args.workers}", stdout=io.StringIO(), stderr=io.StringIO())  # fmt: skip
        from finops.costing.models import LedgerEntry

        entries = LedgerEntry.objects.count()
        print(f"  ledger: {entries:,} entries")

        _, key = api_key_create(name="bench", scopes=["billing:read"])
        client = Client(HTTP_HOST="localhost")
        window = f"{start.isoformat()},{end.isoformat()}"
        latencies = []
        for _ in range(20):
            started = time.perf_counter()
            response = client.get("/api/v1/allocation", {"window": window, "aggregate": "team"},
                                  HTTP_AUTHORIZATION=f"Bearer {key}")  # fmt: skip
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content[:200]
        p95 = statistics.quantiles(latencies, n=20)[18]
        print(f"  allocation API, month by team: p95 {p95:.0f} ms over 20 requests")

        figures = {
            "bench": "attribution",
            "jobs": month.jobs,
            "gpus": len(gpu_ids),
            "teams": args.teams,
            "days": args.days,
            "telemetry_days": telemetry_days,
            "ledger_entries": entries,
            "workers": args.workers,
            "ledger_s": round(t["ledger"], 2),
            "scan_s": round(t["scan"], 3),
            "ratio_vs_scan": round(t["ledger"] / t["scan"], 2),
            "allocation_month_by_team_p95_ms": round(p95, 1),
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
