"""Ingest benchmark: the project's write path against raw COPY and Django bulk_create.

Generates realistic 1 Hz samples for 512 GPUs (2,000,000 by default) in the order agents
send them (time-major: each host's 8 GPUs for the same seconds per batch), writes them
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import bench_database, timed

VRAM = 85520809984


FLUSH_S = 10  # the agent's default: --interval 1, --flush-every 10
GPUS_PER_HOST = 8


def make_records(gpu_uuids: list[str], samples: int, start: datetime) -> list:  # type: ignore[type-arg]
    """Samples in the order agents send them (time-major): every ``FLUSH_S`` seconds each
    host pushes its 8 GPUs' samples of those seconds, second by second; hosts one after
    another. Batches cut from this list therefore hold whole hosts for the same seconds,
    as the server receives them, not one GPU's whole series."""
    from collectors.records import GpuSample

    rng = random.Random(7)
    seconds = -(-samples // len(gpu_uuids))
    busy_until = [0] * len(gpu_uuids)
    energy = [rng.randrange(10**9) for _ in gpu_uuids]
    hosts = [
        range(h, min(h + GPUS_PER_HOST, len(gpu_uuids)))
        for h in range(0, len(gpu_uuids), GPUS_PER_HOST)
    ]
    out = []
    for window in range(0, seconds, FLUSH_S):
        for host in hosts:
            for t in range(window, min(window + FLUSH_S, seconds)):
                for g in host:
                    if t >= busy_until[g] and rng.random() < 0.01:
                        busy_until[g] = t + rng.randrange(60, 900)
                    busy = t < busy_until[g]
                    util = rng.uniform(70, 100) if busy else 0.0
                    power = rng.uniform(450, 700) if busy else rng.uniform(60, 90)
                    energy[g] += int(power * 1000)
                    out.append(
                        GpuSample(
                            gpu_uuid=gpu_uuids[g],
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
                            energy_mj=energy[g],
                        )
                    )
    return out[:samples]


def dcgm_scrape(gpus: int) -> str:
    """One exposition with ``gpus`` H100s across hosts of 8, HELP/TYPE lines included."""
    rng = random.Random(11)
    metrics = [
        ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda: rng.choice((1755, 1980))),
        ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", lambda: 2619),
        ("DCGM_FI_DEV_MEMORY_TEMP", "gauge", "Memory temperature (in C).", lambda: rng.randint(40, 80)),
        ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda: rng.randint(35, 85)),
        ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda: round(rng.uniform(60, 700), 3)),
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "counter", "Total energy consumption since boot (in mJ).",
         lambda: rng.randrange(10**12)),
        ("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", "counter", "Total number of PCIe retries.", lambda: 0),
        ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda: rng.randint(0, 100)),
        ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", lambda: rng.randint(0, 100)),
        ("DCGM_FI_DEV_ENC_UTIL", "gauge", "Encoder utilization (in %).", lambda: 0),
        ("DCGM_FI_DEV_DEC_UTIL", "gauge", "Decoder utilization (in %).", lambda: 0),
        ("DCGM_FI_DEV_XID_ERRORS", "gauge", "Value of the last XID error encountered.", lambda: 0),
        ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", lambda: rng.randint(0, 40000)),
        ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", lambda: rng.randint(0, 40000)),
        ("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", "counter", "Total NVLink bandwidth counters.", lambda: rng.randrange(10**9)),
        ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "gauge", "Ratio of time the graphics engine is active.",
         lambda: round(rng.random(), 6)),
        ("DCGM_FI_PROF_PCIE_TX_BYTES", "gauge", "PCIe TX bytes per second.", lambda: rng.randrange(10**10)),
        ("DCGM_FI_PROF_PCIE_RX_BYTES", "gauge", "PCIe RX bytes per second.", lambda: rng.randrange(10**10)),
    ]  # fmt: skip
    lines = []
    for name, kind, help_text, value in metrics:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for g in range(gpus):
            host, index = divmod(g, 8)
            labels = (
                f'gpu="{index}",UUID="GPU-{g:08x}-5fd4-4c1b-9a3e-1f2e3d4c5b6a",pci_bus_id="00000000:{index:02x}:00.0",'
                f'device="nvidia{index}",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-{host:03d}",'
                'DCGM_FI_DRIVER_VERSION="550.54.15",container="",namespace="",pod=""'
            )
            lines.append(f"{name}{{{labels}}} {value()}")
    return "\n".join(lines) + "\n"


def parse_benchmark(gpus: int, repeats: int = 5) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    from collectors.dcgm import parse_exposition

    text = dcgm_scrape(gpus)
    lines = text.count("\n")

    def best(fn: Any) -> float:
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times)

    ours = best(lambda: parse_exposition(text))
    theirs = best(lambda: sum(len(f.samples) for f in text_string_to_metric_families(text)))
    result = parse_exposition(text)
    assert len(result.samples) == gpus and result.skipped_lines == 0
    print(f"  {lines:,} lines, {len(text) / 1e6:.1f} MB, {gpus} GPUs (best of {repeats})")
    print(f"  collectors.dcgm.parse_exposition (to validated samples): {ours * 1000:.1f} ms")
    print(f"  prometheus_client text parser (to metric families):      {theirs * 1000:.1f} ms")
    return {
        "parse_512_ms": round(ours * 1000, 2),
        "prometheus_client_parse_512_ms": round(theirs * 1000, 2),
        "parse_ratio_vs_prometheus_client": round(theirs / ours, 3),
    }


def _job_event(n: int, uuids: list[str], start: datetime, source: str) -> dict[str, Any]:
    """A finished job on one or two GPUs, as a farm backfilling history reports it."""
    began = start + timedelta(minutes=n % 600)
    ended = began + timedelta(minutes=20)
    iso = [t.isoformat().replace("+00:00", "Z") for t in (began, ended)]
    gpus = [uuids[n % len(uuids)]] + ([uuids[(n + 1) % len(uuids)]] if n % 3 == 0 else [])
    return {
        "source": source, "external_id": f"job-{n}", "team": "bench-team", "status": "succeeded",
        "clip_id": f"clip-{n // 2}", "project": "trailer", "model": "wan2.1-t2v-14b",
        "model_version": "2.1", "frames": 81, "fps": 16, "width": 1280, "height": 720,
        "steps": 50, "usable": n % 4 != 0, "queued_at": iso[0], "started_at": iso[0],
        "finished_at": iso[1], "gpus": [{"uuid": g, "start": iso[0], "end": iso[1]} for g in gpus],
    }  # fmt: skip


def jobs_benchmark(uuids: list[str], start: datetime, single: int, bulk: int) -> dict[str, Any]:
    """Job events through the API in this process (no network): ``single`` events as
    ``POST /api/v1/jobs``, one a request, and ``bulk`` events as ``POST /api/v1/jobs/bulk``
    in gzip NDJSON batches of ``JOBS_BULK_MAX_LINES``. The per-key burst limit (120 a
    minute) is lifted for the run: it is the path's own cost that is measured."""
    import gzip as gz

    from django.conf import settings
    from rest_framework.test import APIClient

    from finops.accounts.models import Team
    from finops.accounts.services import api_key_create
    from finops.api.throttling import BurstRateThrottle, SustainedRateThrottle
    from finops.jobs.models import RenderJob

    BurstRateThrottle.rate = SustainedRateThrottle.rate = "10000000/min"  # type: ignore[attr-defined]
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    Team.objects.get_or_create(slug="bench-team", defaults={"name": "Bench"})
    _, key = api_key_create(name="bench jobs", scopes=["ingest:write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    t: dict[str, float] = {}
    with timed("jobs_single", t):
        for n in range(single):
            answer = client.post("/api/v1/jobs", _job_event(n, uuids, start, "one"), format="json")
            assert answer.status_code == 201, answer.content
    events = [_job_event(n, uuids, start, "many") for n in range(bulk)]
    size = settings.JOBS_BULK_MAX_LINES
    bodies = [
        gz.compress("\n".join(json.dumps(e) for e in events[i : i + size]).encode(), 1)
        for i in range(0, bulk, size)
    ]
    with timed("jobs_bulk", t):
        for body in bodies:
            answer = client.post("/api/v1/jobs/bulk", body, content_type="application/x-ndjson",
                                 HTTP_CONTENT_ENCODING="gzip")  # fmt: skip
            assert answer.status_code == 200 and not answer.json()["rejected"], answer.content
    assert RenderJob.objects.filter(source="many").count() == bulk
    single_rate, bulk_rate = single / t["jobs_single"], bulk / t["jobs_bulk"]
    print(f"    one a request: {single_rate:,.0f} events/s ({1000 / single_rate:.2f} ms each); "
          f"bulk: {bulk_rate:,.0f} events/s, {bulk_rate / single_rate:.1f}x (target >= 20x)")  # fmt: skip
    return {
        "jobs_single_per_s": round(single_rate, 1),
        "jobs_bulk_per_s": round(bulk_rate, 1),
        "jobs_bulk_vs_single": round(bulk_rate / single_rate, 2),
    }


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
    parser.add_argument("--jobs-single", type=int, default=500, help="events sent one a request")
    parser.add_argument("--jobs-bulk", type=int, default=20_000, help="events sent in bulk")
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

        from finops.telemetry.rollups import rollups_recompute

        hour_samples = GpuSampleRow.objects.filter(ts__lt=start + timedelta(hours=1)).count()
        print(f"rollup of the first hour ({hour_samples:,} samples):")
        # The first pass over freshly written rows also sets their visibility hint bits
        # (writes); the periodic rollup meets rows a later pass has settled. Both are shown.
        with timed("rollup_hour_cold", t):
            counts = rollups_recompute(start=start, end=start + timedelta(hours=1))
        with timed("rollup_hour", t):
            again = rollups_recompute(start=start, end=start + timedelta(hours=1))
        assert again == counts
        print(f"    {counts['minutes']:,} GPU-minutes, {counts['hours']:,} GPU-hours")

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

        print("parsing a dcgm-exporter scrape:")
        parse = parse_benchmark(len(uuids))

        print("job events, one a request against a batch of many:")
        jobs = jobs_benchmark(uuids, start, args.jobs_single, args.jobs_bulk)

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
            "rollup_hour_samples": hour_samples,
            "rollup_hour_512_s": round(t["rollup_hour"], 3),
            "rollup_hour_512_cold_s": round(t["rollup_hour_cold"], 3),
            **parse,
            **jobs,
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
