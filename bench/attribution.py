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
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import bench_database, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--gpus", type=int, default=512)
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--telemetry-days",
        type=int,
        default=3,
        help="days (from the first) with minute rollups for every GPU",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="recompute_costs --workers (default: one per CPU)",
    )
    args = parser.parse_args()

    with bench_database("attribution"):
        from django.core.management import call_command
        from django.db import connection, transaction
        from django.test import Client

        from finops.accounts.models import Team
        from finops.accounts.services import api_key_create
        from finops.fleet.models import Gpu, GpuModel, Node, Site
        from finops.pricing.models import PriceRate
        from finops.telemetry.writes import copy_rows

        rng = random.Random(5)
        start = datetime(2026, 10, 1, tzinfo=UTC)
        end = start + timedelta(days=args.days)
        span_s = int((end - start).total_seconds())
        site = Site.objects.create(slug="aws", provider="aws", region="us-east-1")
        model = GpuModel.objects.get(name="H100 SXM")
        PriceRate.objects.create(provider="aws", sku="p5.48xlarge", region="us-east-1", pricing_model="on-demand",
                                 gpus_per_unit=8, price_per_unit_hour=55.04, price_per_gpu_hour=6.88,
                                 valid_from=start - timedelta(days=1), source="csv")  # fmt: skip
        teams = [
            Team.objects.create(slug=f"team-{i:02d}", name=f"Team {i}") for i in range(args.teams)
        ]
        gpu_ids = []
        for n in range(-(-args.gpus // 8)):
            node = Node.objects.create(
                site=site, hostname=f"gpu-{n:03d}", instance_type="p5.48xlarge"
            )
            for i in range(min(8, args.gpus - len(gpu_ids))):
                gpu_ids.append(
                    Gpu.objects.create(node=node, uuid=f"GPU-{n}-{i}", index=i, model=model).id
                )

        t: dict[str, float] = {}
        print(
            f"generating {args.jobs:,} jobs on {len(gpu_ids)} GPUs over {args.days} days:",
            flush=True,
        )
        with timed("generate", t):
            per_gpu = -(-args.jobs // len(gpu_ids))
            mean_slot = span_s / per_gpu
            jobs, allocations, job_id = [], [], 0
            for gpu in gpu_ids:
                cursor = rng.uniform(0, mean_slot)
                for _ in range(per_gpu):
                    if job_id >= args.jobs:
                        break
                    length = rng.uniform(0.3, 1.3) * mean_slot
                    s = start + timedelta(seconds=cursor)
                    e = min(s + timedelta(seconds=length), end)
                    if s >= end:
                        break
                    job_id += 1
                    team = teams[rng.randrange(len(teams))].id
                    usable = rng.random() < 0.7
                    jobs.append((job_id, "bench", f"job-{job_id}", team, "succeeded", s, s, e, usable, 81, 16.0,
                                 "", "trailer", "wan2.1-t2v-1.3b", "2.1", e, e))  # fmt: skip
                    allocations.append((job_id, gpu, s, e))
                    cursor += length + rng.uniform(-0.1, 0.3) * mean_slot  # some overlap, some gaps
            with transaction.atomic(), connection.cursor() as c:
                copy_rows(c.cursor, "jobs_renderjob",
                          ("id", "source", "external_id", "team_id", "status", "queued_at", "started_at", "finished_at",
                           "usable", "frames", "fps", "error", "project", "model_name", "model_version", "created_at",
                           "updated_at"),
                          ("int8", "text", "text", "int8", "text", "timestamptz", "timestamptz", "timestamptz", "bool",
                           "int4", "float8", "text", "text", "text", "text", "timestamptz", "timestamptz"), jobs)  # fmt: skip
                copy_rows(c.cursor, "jobs_gpuallocation", ("job_id", "gpu_id", "start", '"end"'),
                          ("int8", "int8", "timestamptz", "timestamptz"), allocations)  # fmt: skip
                c.execute(
                    "SELECT setval(pg_get_serial_sequence('jobs_renderjob', 'id'), %s)", [job_id]
                )
                c.execute("ANALYZE")
        print(f"  {len(jobs):,} jobs and allocations written")
        telemetry_days = min(args.telemetry_days, args.days)
        if telemetry_days:
            from finops.telemetry.rollups import _dialect, _hour_sql

            telemetry_end = start + timedelta(days=telemetry_days)
            with timed("telemetry", t), transaction.atomic(), connection.cursor() as c:
                # One row per GPU-minute, activity varying by GPU and minute.
                c.execute(
                    "INSERT INTO telemetry_gpuminute (gpu_id, ts, samples, covered_s, busy_s, "
                    "util_mean_pct, util_max_pct, mem_pressure_s, throttle_power_cap_s, "
                    "throttle_hw_slowdown_s, throttle_sw_thermal_s, throttle_hw_thermal_s, "
                    "throttle_power_brake_s, energy_j, util_s, mem_s, clock_s, power_s) "
                    "SELECT g.id, m, 4, 60, 60, u, u, 0, 0, 0, 0, 0, 0, 24000, 60, 0, 0, 0 "
                    "FROM fleet_gpu g "
                    "CROSS JOIN generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute', "
                    "interval '1 minute') AS m "
                    "CROSS JOIN LATERAL (SELECT (20 + (g.id * 37 + extract(epoch FROM m)::int / 60) %% 80)::float8 AS u) x",
                    [start, telemetry_end],
                )
                minutes = c.rowcount
                c.execute(_hour_sql(_dialect()), {"start": start, "end": telemetry_end})
                c.execute("ANALYZE")
            print(f"  {minutes:,} GPU-minutes of telemetry written")

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
            "jobs": len(jobs),
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
