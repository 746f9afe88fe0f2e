"""The benchmarks' month: H100 nodes (8 GPUs each, rate-card priced), teams, and jobs with
one GPU allocation each, back to back with gaps on every GPU (some overlapping, to
exercise concurrent splits), and minute telemetry (with its hour rollups) for every GPU
over the first days. Written by COPY into the benchmark's throw-away database; the
attribution, dashboard and report benchmarks share it.

``realistic=True`` (the attribution benchmark) makes it a month a studio would have: every
eighth node on-prem with an energy price, a priced storage volume on every node, jobs from
a few minutes to several hours long, one in ten on two GPUs, one in twenty failed or out
of memory, attempts at clips (regenerations), and minute telemetry with gaps and idle
minutes on every day, so the idle, unallocated, storage, energy, measured-usage and
multi-GPU paths of the ledger all run."""

from __future__ import annotations

import argparse
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from _setup import timed

START = datetime(2026, 10, 1, tzinfo=UTC)
PROJECTS = ("trailer", "series-s1", "ads", "shorts", "previz")
MODELS = (("wan2.1-t2v-1.3b", "2.1"), ("wan2.1-t2v-14b", "2.1"), ("hunyuan-video", "1.0"))
RESOLUTIONS = ((832, 480), (1280, 720))


def month_arguments(parser: argparse.ArgumentParser) -> None:
    """The month's size, as every benchmark on it takes it."""
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--gpus", type=int, default=512)
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="recompute_costs --workers (default: one per CPU)",
    )


@dataclass
class Month:
    start: datetime
    end: datetime
    teams: list[Any]
    gpu_ids: list[int]
    jobs: int
    telemetry_days: int


def month_build(
    *,
    jobs: int,
    gpus: int,
    teams: int,
    days: int,
    telemetry_days: int,
    t: dict[str, float],
    clips: bool = False,
    realistic: bool = False,
) -> Month:
    """Write the month. With ``clips``, each team's jobs are attempts at clips, two or
    three attempts each; ``realistic``: see the module's text (clips included)."""
    from django.db import connection, transaction

    from finops.accounts.models import Team
    from finops.fleet.models import Gpu, GpuModel, Node, Site, StorageDevice
    from finops.pricing.models import PriceRate
    from finops.telemetry.writes import copy_rows

    rng = random.Random(5)
    start = START
    end = start + timedelta(days=days)
    span_s = int((end - start).total_seconds())
    clips = clips or realistic
    site = Site.objects.create(slug="aws", provider="aws", region="us-east-1")
    lab = Site.objects.create(slug="lab", provider="on-prem", region="dc")
    model = GpuModel.objects.get(name="H100 SXM")
    PriceRate.objects.create(provider="aws", sku="p5.48xlarge", region="us-east-1", pricing_model="on-demand",
                             gpus_per_unit=8, price_per_unit_hour=55.04, price_per_gpu_hour=6.88,
                             valid_from=start - timedelta(days=1), source="csv")  # fmt: skip
    if realistic:
        PriceRate.objects.create(provider="aws", sku="gp3", region="us-east-1", pricing_model="on-demand",
                                 gpus_per_unit=1, price_per_unit_hour=0, price_per_gpu_hour=0,
                                 storage_per_gb_month=0.08, valid_from=start - timedelta(days=1),
                                 source="csv")  # fmt: skip
        PriceRate.objects.create(provider="on-prem", sku="rack-h100", region="dc", pricing_model="on-prem",
                                 gpus_per_unit=8, price_per_unit_hour=24, price_per_gpu_hour=3,
                                 energy_per_kwh=0.14, pue=1.3, valid_from=start - timedelta(days=1),
                                 source="onprem")  # fmt: skip
    team_rows = [Team.objects.create(slug=f"team-{i:02d}", name=f"Team {i}") for i in range(teams)]
    gpu_ids: list[int] = []
    node_of: dict[int, list[int]] = {}
    for n in range(-(-gpus // 8)):
        onprem = realistic and n % 8 == 7
        node = Node.objects.create(site=lab if onprem else site, hostname=f"gpu-{n:03d}",
                                   instance_type="rack-h100" if onprem else "p5.48xlarge",
                                   pricing_model="on-prem" if onprem else "on-demand")  # fmt: skip
        if realistic and not onprem:
            StorageDevice.objects.create(node=node, name="nvme1n1", kind="network",
                                         volume_type="gp3", capacity_bytes=4 * 10**12)  # fmt: skip
        on_node: list[int] = []
        for i in range(min(8, gpus - len(gpu_ids))):
            gpu_ids.append(
                Gpu.objects.create(node=node, uuid=f"GPU-{n}-{i}", index=i, model=model).id
            )
            on_node.append(gpu_ids[-1])
            node_of[gpu_ids[-1]] = on_node
    print(f"generating {jobs:,} jobs on {len(gpu_ids)} GPUs over {days} days:", flush=True)
    with timed("generate", t):
        per_gpu = -(-jobs // len(gpu_ids))
        mean_slot = span_s / per_gpu
        job_rows, allocations, job_id = [], [], 0
        for gpu in gpu_ids:
            cursor = rng.uniform(0, mean_slot)
            for _ in range(per_gpu):
                if job_id >= jobs:
                    break
                if realistic:  # a few minutes to several hours, the same mean
                    length = mean_slot * (rng.uniform(0.05, 0.4) if rng.random() < 0.6
                                          else rng.uniform(0.9, 2.8))  # fmt: skip
                else:
                    length = rng.uniform(0.3, 1.3) * mean_slot
                s = start + timedelta(seconds=cursor)
                e = min(s + timedelta(seconds=length), end)
                if s >= end:
                    break
                job_id += 1
                team = team_rows[rng.randrange(len(team_rows))].id
                usable: bool | None = rng.random() < 0.7
                status = "succeeded"
                if realistic and rng.random() < 0.05:
                    status, usable = rng.choice(("failed", "oom")), None
                model_name, version = MODELS[job_id % len(MODELS)]
                job_rows.append((job_id, "bench", f"job-{job_id}", team, status, s, s, e, usable, 81,
                                 16.0, "", PROJECTS[job_id % len(PROJECTS)], model_name, version,
                                 RESOLUTIONS[job_id % len(RESOLUTIONS)][0],
                                 RESOLUTIONS[job_id % len(RESOLUTIONS)][1], e, e))  # fmt: skip
                allocations.append((job_id, gpu, s, e))
                if realistic and rng.random() < 0.1:  # a second GPU of the same node
                    pair = node_of[gpu]
                    allocations.append((job_id, pair[(pair.index(gpu) + 1) % len(pair)], s, e))
                cursor += length + rng.uniform(-0.1, 0.3) * mean_slot  # some overlap, some gaps
        with transaction.atomic(), connection.cursor() as c:
            copy_rows(c.cursor, "jobs_renderjob",
                      ("id", "source", "external_id", "team_id", "status", "queued_at", "started_at",
                       "finished_at", "usable", "frames", "fps", "error", "project", "model_name",
                       "model_version", "width", "height", "created_at", "updated_at"),
                      ("int8", "text", "text", "int8", "text", "timestamptz", "timestamptz", "timestamptz",
                       "bool", "int4", "float8", "text", "text", "text", "text", "int4", "int4",
                       "timestamptz", "timestamptz"),
                      job_rows)  # fmt: skip
            copy_rows(c.cursor, "jobs_gpuallocation", ("job_id", "gpu_id", "start", '"end"'),
                      ("int8", "int8", "timestamptz", "timestamptz"), allocations)  # fmt: skip
            c.execute("SELECT setval(pg_get_serial_sequence('jobs_renderjob', 'id'), %s)", [job_id])
            if clips:
                # A clip per (team, job id // 3 * 3 + team-spread): attempts of one team
                # that lie near each other in time.
                c.execute(
                    "INSERT INTO jobs_clip (team_id, external_id, project, model_name, model_version, "
                    "created_at) SELECT team_id, 'clip-' || (id / 3), MIN(project), MIN(model_name), "
                    "MIN(model_version), now() FROM jobs_renderjob GROUP BY team_id, id / 3"
                )
                c.execute(
                    "UPDATE jobs_renderjob j SET clip_id = c.id FROM jobs_clip c "
                    "WHERE c.team_id = j.team_id AND c.external_id = 'clip-' || (j.id / 3)"
                )
            c.execute("ANALYZE")
    print(f"  {len(job_rows):,} jobs and allocations written")
    telemetry_days = min(telemetry_days, days)
    if telemetry_days:
        from finops.telemetry.rollups import _dialect, _hour_sql

        telemetry_end = start + timedelta(days=telemetry_days)
        # Realistic: an hour in 23 of each GPU has no telemetry (a gap), and a minute whose
        # activity falls under 25% is idle (not busy): idle and unallocated both occur.
        gaps = (
            "WHERE (g.id * 7 + extract(epoch FROM m)::bigint / 3600) %% 23 <> 0 "
            if realistic
            else ""
        )
        busy = "CASE WHEN u < 25 THEN 0 ELSE 60 END" if realistic else "60"
        with timed("telemetry", t), transaction.atomic(), connection.cursor() as c:
            # One row per GPU-minute, activity varying by GPU and minute.
            c.execute(
                "INSERT INTO telemetry_gpuminute (gpu_id, ts, samples, covered_s, busy_s, "  # noqa: S608
                "util_mean_pct, util_max_pct, mem_pressure_s, throttle_power_cap_s, "
                "throttle_hw_slowdown_s, throttle_sw_thermal_s, throttle_hw_thermal_s, "
                "throttle_power_brake_s, energy_j, util_s, mem_s, clock_s, power_s) "
                f"SELECT g.id, m, 4, 60, {busy}, u, u, 0, 0, 0, 0, 0, 0, 6000 + 300 * u, 60, 0, 0, 0 "
                "FROM fleet_gpu g "
                "CROSS JOIN generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute', "
                "interval '1 minute') AS m "
                "CROSS JOIN LATERAL (SELECT (20 + (g.id * 37 + extract(epoch FROM m)::int / 60) %% 80)::float8 AS u) x "
                + gaps,
                [start, telemetry_end],
            )
            minutes = c.rowcount
            c.execute(_hour_sql(_dialect()), {"start": start, "end": telemetry_end})
            c.execute("ANALYZE")
        print(f"  {minutes:,} GPU-minutes of telemetry written")
    return Month(start, end, team_rows, gpu_ids, len(job_rows), telemetry_days)


def month_ledger(month: Month, *, workers: int, t: dict[str, float]) -> None:
    """The month's ledger, as `manage.py recompute_costs` computes it (rollups as written)."""
    import io

    from django.core.management import call_command

    with timed("ledger", t):
        call_command("recompute_costs", f"--from={month.start.isoformat()}",
                     f"--to={month.end.isoformat()}", f"--workers={workers}", "--no-rollups",
                     stdout=io.StringIO(), stderr=io.StringIO())  # fmt: skip
