"""Attribution benchmark: a realistic month's ledger against writing as many lines.

Builds, in a throw-away PostgreSQL database, the realistic month of ``bench/_month.py``:
GPUs (8 per node; cloud nodes rate-card priced with a priced storage volume, every eighth
node on-prem with an energy price), teams, jobs from minutes to hours long (one in ten on
two GPUs, one in twenty failed, attempts at clips), and minute telemetry rollups with gaps
(and the hours rolled up from them) for every GPU over ``--telemetry-days`` days (all of
them by default). Then times:

* `ledger`: the whole month's ledger, both bases, and every daily summary
  (`recompute_costs`, a UTC day at a time, `--workers` processes, one per CPU by default);
* `copy_lines`: the floor of writing it: a binary COPY of as many rows of the ledger line's
  shape (the ledger's own lines) into an identical table (same columns and indexes), over
  as many connections as the ledger has workers, committed;
* `scan`: one SQL aggregate over the same allocations: GPU-seconds by team (for reference);
* `dirty_hour`: a late job event for the month's last hour (through the job service) until
  that hour's ledger and summaries are current (the dirty-window recompute);
* `allocation_month_by_team_p95_ms`: 20 requests of GET /api/v1/allocation for the month
  by team, through the Django test client.

Prints the figures, `ratio_vs_copy_lines` = ledger / copy_lines (target <= 1.5),
`dirty_hour_s` (target <= 2), `ratio_vs_scan` = ledger / scan, and a JSON line.

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
        default=None,
        help="days (from the first) with minute rollups for every GPU (default: all)",
    )
    parser.add_argument(
        "--profile-day", action="store_true",
        help="after timing, print a cProfile of recomputing the month's middle day",
    )  # fmt: skip
    args = parser.parse_args()

    with bench_database("attribution"):
        from django.core.management import call_command
        from django.db import connection
        from django.test import Client

        from finops.accounts.services import api_key_create

        t: dict[str, float] = {}
        month = month_build(
            jobs=args.jobs, gpus=args.gpus, teams=args.teams, days=args.days,
            telemetry_days=args.days if args.telemetry_days is None else args.telemetry_days,
            t=t, realistic=True,
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
        t["copy_lines"] = copy_lines(LedgerEntry._meta.db_table, workers=args.workers)
        print(f"  copy_lines: {entries:,} rows by binary COPY in {t['copy_lines']:.2f} s")
        t["dirty_hour"] = dirty_hour(month)
        print(f"  dirty_hour: a late job in the last hour current in {t['dirty_hour']:.2f} s")

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

        if args.profile_day:
            import cProfile
            import pstats
            from datetime import timedelta

            from finops.costing.engine import ledger_recompute

            day = start + timedelta(days=args.days // 2)
            profiler = cProfile.Profile()
            profiler.runcall(ledger_recompute, start=day, end=day + timedelta(days=1))
            print(f"--- profile of recomputing {day:%Y-%m-%d} ---")
            stats = pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative")
            stats.print_stats(r"finops/|psycopg/(connection|cursor)|numpy|pandas/core/groupby", 35)
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
            "copy_lines_s": round(t["copy_lines"], 2),
            "ratio_vs_copy_lines": round(t["ledger"] / t["copy_lines"], 2),
            "dirty_hour_s": round(t["dirty_hour"], 2),
            "scan_s": round(t["scan"], 3),
            "ratio_vs_scan": round(t["ledger"] / t["scan"], 2),
            "target_ratio_vs_copy_lines": 1.5,
            "target_dirty_hour_s": 2,
            "allocation_month_by_team_p95_ms": round(p95, 1),
        }
        print(json.dumps(figures))


def copy_lines(table: str, *, workers: int) -> float:
    """Seconds to binary-COPY the rows of ``table`` into an identical table (``LIKE …
    INCLUDING ALL``: columns, defaults, constraints and indexes) over ``workers``
    connections, each its share in one transaction. The data is read out first, untimed."""
    import threading

    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    copy_table = f"{table}_copybench"
    with connection.cursor() as c:
        c.execute(f"DROP TABLE IF EXISTS {copy_table}")
        c.execute(f"CREATE TABLE {copy_table} (LIKE {table} INCLUDING ALL)")
    shares: list[bytes] = []
    with psycopg.connect(**params) as conn, conn.cursor() as cursor:
        for k in range(workers):
            out = bytearray()
            query = (
                f"COPY (SELECT * FROM {table} WHERE id % {workers} = {k}) TO STDOUT (FORMAT BINARY)"  # noqa: S608
            )
            with cursor.copy(query) as copy:
                for data in copy:
                    out += data
            shares.append(bytes(out))

    def write(data: bytes) -> None:
        with psycopg.connect(**params) as conn, conn.cursor() as cursor:
            with cursor.copy(f"COPY {copy_table} FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(data)
            conn.commit()

    threads = [threading.Thread(target=write, args=(data,)) for data in shares]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    with connection.cursor() as c:
        c.execute(f"SELECT count(*) FROM {copy_table}")  # noqa: S608
        copied = c.fetchone()[0]
        c.execute(f"DROP TABLE {copy_table}")
    print(f"  copy_lines: {copied:,} rows copied over {workers} connection(s)")
    return elapsed


def dirty_hour(month) -> float:  # type: ignore[no-untyped-def]
    """A job event arriving late for the month's last hour, through the job service, until
    the ledger and summaries of that hour are current again (the dirty-window recompute the
    costing beat runs)."""
    from datetime import timedelta

    from finops.costing.engine import dirty_windows_recompute
    from finops.costing.models import DirtyWindow, LedgerEntry
    from finops.fleet.models import Gpu
    from finops.jobs.models import JobStatus
    from finops.jobs.services import AllocationIn, job_record

    DirtyWindow.objects.all().delete()
    gpu = Gpu.objects.get(pk=month.gpu_ids[0])
    hour = month.end - timedelta(hours=1)
    started = time.perf_counter()
    job_record(source="late", external_id="late-1", team=month.teams[0],
               status=JobStatus.SUCCEEDED, started_at=hour, finished_at=hour + timedelta(minutes=20),
               allocations=[AllocationIn(uuid=gpu.uuid, start=hour, end=hour + timedelta(minutes=20))])  # fmt: skip
    dirty_windows_recompute()
    elapsed = time.perf_counter() - started
    assert LedgerEntry.objects.filter(job__source="late").exists()
    assert not DirtyWindow.objects.exists()
    return elapsed


if __name__ == "__main__":
    main()
