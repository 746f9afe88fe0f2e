"""Insights benchmark: a simulated studio with every fault and decoy, every detector over
its whole window, against one SQL scan of the same window's GPU-hour rollups and jobs.

Prints `recall` and `precision` of the findings against the simulator's ground truth,
`detect_month_s` (the detectors over the window: loading the frames and running all eight),
`scan_s` (one aggregate over the window's GPU-hour rollups joined with one over its jobs,
same run) and `ratio_vs_scan`, and a JSON line.

    .venv/bin/python bench/insights.py [--days 7] [--gpus 128] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import bench_database, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--gpus", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--profile", action="store_true", help="print a cProfile of the detection after timing"
    )
    args = parser.parse_args()

    with bench_database("insights"):
        from django.db import connection

        from finops.insights.services import drafts_detect
        from finops.simulation.studio import studio_simulate

        t: dict[str, float] = {}
        print(f"simulating {args.days} days of {args.gpus} GPUs with every fault:", flush=True)
        with timed("simulate", t):
            truth = studio_simulate(days=args.days, gpus=args.gpus, seed=args.seed,
                                    progress=lambda s: print(f"  {s}", flush=True))  # fmt: skip
        start, end = datetime.fromisoformat(truth.start), datetime.fromisoformat(truth.end)
        with connection.cursor() as c:
            c.execute("ANALYZE")
        with timed("scan", t), connection.cursor() as c:
            c.execute(
                "SELECT h.gpu_id, SUM(h.busy_s), SUM(h.mem_pressure_s), SUM(h.throttle_sw_thermal_s),"
                " SUM(h.throttle_power_cap_s), AVG(h.util_mean_pct) FROM telemetry_gpuhour h"
                " WHERE h.ts >= %s AND h.ts < %s GROUP BY h.gpu_id",
                [start, end],
            )
            hours = c.fetchall()
            c.execute(
                "SELECT team_id, model_name, status, COUNT(*), SUM(frames) FROM jobs_renderjob"
                " WHERE finished_at >= %s AND finished_at < %s GROUP BY team_id, model_name, status",
                [start, end],
            )
            groups = c.fetchall()
        print(f"  scan: {len(hours)} GPUs, {len(groups)} job groups")
        with timed("detect", t):
            _, drafts = drafts_detect(start=start, end=end)
        found = {(d.pattern, d.scope_kind, d.scope_key) for d in drafts}
        wanted = {(f["pattern"], f["scope_kind"], f["scope_key"]) for f in truth.faults}
        decoys = {(f["pattern"], f["scope_kind"], f["scope_key"]) for f in truth.decoys}
        hits = found & wanted
        recall = len(hits) / len(wanted) if wanted else 1.0
        precision = len(hits) / len(found) if found else 1.0
        print(f"  {len(found)} findings: {len(hits)} of {len(wanted)} faults found, "
              f"{len(found - wanted)} others, {len(found & decoys)} decoys fired")  # fmt: skip
        for item in sorted(found - wanted):
            print(f"    not a fault: {item}")
        for item in sorted(wanted - found):
            print(f"    missed: {item}")
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            profiler.runcall(drafts_detect, start=start, end=end)
            print("--- profile of the detection ---")
            stats = pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative")
            stats.print_stats(r"finops/|psycopg/connection|pandas/core/frame", 30)
        figures = {
            "bench": "insights",
            "days": args.days,
            "gpus": args.gpus,
            "faults": len(wanted),
            "findings": len(found),
            "recall": round(recall, 4),
            "precision": round(precision, 4),
            "simulate_s": round(t["simulate"], 1),
            "detect_month_s": round(t["detect"], 3),
            "scan_s": round(t["scan"], 4),
            "ratio_vs_scan": round(t["detect"] / t["scan"], 2),
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
