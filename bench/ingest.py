"""Ingest benchmark: the project's write path against raw COPY and Django bulk_create.

Generates realistic 1 Hz samples for 512 GPUs (2,000,000 by default), writes them
through the ingest store path into PostgreSQL, then writes identical rows with a raw
psycopg COPY into an identical bare table (same columns and CHECKs, no indexes, no
foreign key) and with Django ``bulk_create``, all in batches of the same size. Also times
parsing a 512-GPU dcgm-exporter scrape against prometheus_client's parser, and a
one-hour rollup for 512 GPUs. Prints figures, ratios, and a JSON summary as last line.

    .venv/bin/python bench/ingest.py [--samples 2000000] [--gpus 512] [--batch 10000]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import bench_database, timed

VRAM = 85520809984


def make_records(gpu_uuids: list[str], samples: int, start: datetime) -> list:  # type: ignore[type-arg]
    from collectors.records import GpuSample

    rng = random.Random(7)
    seconds = -(-samples // len(gpu_uuids))
    out = []
    for uuid in gpu_uuids:
        busy_until = 0
        energy = rng.randrange(10**9)
        for t in range(seconds):
            if len(out) >= samples:
                break
            if t >= busy_until and rng.random() < 0.01:
                busy_until = t + rng.randrange(60, 900)
            busy = t < busy_until
            util = rng.uniform(70, 100) if busy else 0.0
            power = rng.uniform(450, 700) if busy else rng.uniform(60, 90)
            energy += int(power * 1000)
            out.append(
                GpuSample(
                    gpu_uuid=uuid,
                    ts=start + timedelta(seconds=t),
                    sm_util_pct=util,
                    mem_used_bytes=int(VRAM * (rng.uniform(0.6, 0.97) if busy else 0.01)),
                    mem_total_bytes=VRAM,
                    power_w=power,
                    power_limit_w=700.0,
                    temp_c=rng.uniform(60, 84) if busy else 35.0,
                    sm_clock_mhz=rng.choice((1755, 1980)) if busy else 345,
                    sm_clock_max_mhz=1980,
                    clocks_event_reasons=rng.choice((0, 0, 0, 4)) if busy else 1,
                    pcie_tx_bytes_per_s=rng.uniform(1e8, 2e9) if busy else 0.0,
                    pcie_rx_bytes_per_s=rng.uniform(1e8, 5e8) if busy else 0.0,
                    energy_mj=energy,
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2_000_000)
    parser.add_argument("--gpus", type=int, default=512)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument(
        "--bulk-create-samples",
        type=int,
        default=400_000,
        help="bulk_create is slow: its rate is measured on this many of the same rows",
    )
    args = parser.parse_args()

    with bench_database("ingest"):
        from django.db import connection, transaction

        from finops.fleet.models import Gpu, Node, Site
        from finops.telemetry.ingest import gpu_samples_store
        from finops.telemetry.models import GpuSample as GpuSampleRow
        from finops.telemetry.writes import GPU_SAMPLE_COLUMNS, GPU_SAMPLE_TYPES, copy_rows

        site = Site.objects.create(slug="bench", provider="aws", region="us-east-1")
        uuids = []
        for n in range(-(-args.gpus // 8)):
            node = Node.objects.create(
                site=site, hostname=f"bench-{n:03d}", instance_type="p5.48xlarge"
            )
            for i in range(8):
                if len(uuids) < args.gpus:
                    uuid = f"GPU-{n:03d}-{i}"
                    Gpu.objects.create(node=node, uuid=uuid, index=i, vram_bytes=VRAM)
                    uuids.append(uuid)
        start = (datetime.now(UTC) - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
        t0 = time.perf_counter()
        records = make_records(uuids, args.samples, start)
        n = len(records)
        # The generated data set is large and lives for the whole run: keep the cyclic
        # garbage collector from re-scanning it during every timed section.
        gc.collect()
        gc.freeze()
        print(f"generated {n:,} samples for {len(uuids)} GPUs in {time.perf_counter() - t0:.1f} s")
        gpu_ids = dict(Gpu.objects.values_list("uuid", "id"))
        values = attrgetter(*GPU_SAMPLE_COLUMNS[1:-1])
        rows = [(gpu_ids[s.gpu_uuid], *values(s), "nvml") for s in records]
        batches = range(0, n, args.batch)
        t: dict[str, float] = {}

        print("writing:")
        with timed("ingest_path", t):
            for i in batches:
                chunk = records[i : i + args.batch]
                gpu_samples_store(records=list(enumerate(chunk, start=1)))
        stored = GpuSampleRow.objects.count()
        assert stored == n, f"ingest stored {stored} of {n}"

        # Baselines: raw COPY of the identical rows into a table identical to the samples
        # table (same columns, CHECKs and indexes), and into a bare copy without indexes.
        with connection.cursor() as c:
            c.execute("CREATE TABLE bench_copy (LIKE telemetry_gpusample INCLUDING ALL)")
            c.execute(
                "CREATE TABLE bench_copy_bare "
                "(LIKE telemetry_gpusample INCLUDING CONSTRAINTS INCLUDING IDENTITY)"
            )
        for table, label in (("bench_copy", "raw_copy"), ("bench_copy_bare", "raw_copy_unindexed")):
            with timed(label, t):
                for i in batches:
                    with transaction.atomic(), connection.cursor() as c:
                        copy_rows(
                            c.cursor,
                            table,
                            GPU_SAMPLE_COLUMNS,
                            GPU_SAMPLE_TYPES,
                            rows[i : i + args.batch],
                        )

        # Re-ingesting the same batch: every row is a duplicate, nothing is written twice.
        with timed("reingest_duplicates", t):
            again = gpu_samples_store(records=list(enumerate(records[: args.batch], start=1)))
        assert again.accepted == 0 and again.duplicate == min(args.batch, n)

        with connection.cursor() as c:
            c.execute("TRUNCATE telemetry_gpusample")
        fields = [f for f in GPU_SAMPLE_COLUMNS if f != "gpu_id"]
        bulk_n = min(n, args.bulk_create_samples)
        with timed("bulk_create", t):
            for i in range(0, bulk_n, args.batch):
                GpuSampleRow.objects.bulk_create(
                    [
                        GpuSampleRow(gpu_id=r[0], **dict(zip(fields, r[1:], strict=True)))
                        for r in rows[i : min(i + args.batch, bulk_n)]
                    ],
                    batch_size=args.batch,
                )

        figures = {
            "bench": "ingest",
            "samples": n,
            "gpus": len(uuids),
            "batch": args.batch,
            "ingest_samples_per_s": round(n / t["ingest_path"]),
            "copy_samples_per_s": round(n / t["raw_copy"]),
            "bulk_create_samples": bulk_n,
            "bulk_create_samples_per_s": round(bulk_n / t["bulk_create"]),
            "copy_unindexed_samples_per_s": round(n / t["raw_copy_unindexed"]),
            "ratio_vs_copy": round(t["raw_copy"] / t["ingest_path"], 3),
            "ratio_vs_copy_unindexed": round(t["raw_copy_unindexed"] / t["ingest_path"], 3),
            "ratio_vs_bulk_create": round((n / t["ingest_path"]) / (bulk_n / t["bulk_create"]), 3),
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
