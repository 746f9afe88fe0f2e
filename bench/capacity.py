"""Capacity benchmark: the largest fleet whose minute of telemetry one server handles in
60 s, with minutes rolled up at the edge and with raw 1 Hz samples.

For growing fleet sizes (doubling, then bisecting between the last size within the minute
and the first beyond it), one minute of telemetry is handled the way the server handles
it, against the local PostgreSQL (the HTTP layer is measured by bench/load.py):

- each size alone: the fleets of earlier sizes are removed, and the alert rules' windows
  hold the fleet's 15 minutes before the measured one (a server in steady state);
- raw: every GPU's 60 samples through the sample ingest service in 1,000-sample gzip NDJSON
  batches, made before the clock starts (agents make them), in ``--ingest-workers``
  processes at once as web workers take them (3 by default on 2 cores), then the minute
  and hour rollups of that minute;
- edge: every GPU's minute row through the minute ingest service (upserts, hours
  recomputed) in 1,000-row batches, as ``collectors.agent`` sends them, alike;
- then, both: one tick of the default alert rules, and the minute's share of the ledger
  (a day's ledger recompute over an hour of minute rows at a small size, per GPU-minute,
  times the fleet: the ledger is hourly, so a minute carries 1/60 of an hour's).

The capacity is the largest size measured whose stages sum to 60 s or less. Storage is
measured on PostgreSQL (table plus indexes) around the ingest of the largest size run:
bytes per GPU-day in each mode and GPUs per terabyte at the default retentions (raw samples
``TELEMETRY_RAW_RETENTION_DAYS``, 14; minute rollups ``TELEMETRY_MINUTE_RETENTION_DAYS``,
400). The last line is one JSON object.

    .venv/bin/python bench/capacity.py [--raw-start 2048] [--edge-start 16384]
        [--raw-max 131072] [--edge-max 524288] [--ingest-workers 3] [--refine 2]
        [--modes edge,raw]
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import bench_database

BATCH = 1000
BUDGET_S = 60.0
MINUTE_COLUMNS_LINE = (
    '"samples":60,"covered_s":60.0,"busy_s":%s,"util_mean_pct":%s,"util_max_pct":%s,'
    '"mem_frac_mean":0.9,"mem_frac_max":0.95,"mem_pressure_s":%s,"throttle_power_cap_s":3.0,'
    '"clock_ratio_mean":0.93,"power_mean_w":512.5,"temp_max_c":71.0,"energy_j":30750.0,'
    '"pcie_tx_bytes":6.0e10,"pcie_rx_bytes":2.0e10,"util_s":60.0,"mem_s":60.0,"clock_s":60.0,'
    '"power_s":60.0'
)


def _fleet(size: int, prefix: str) -> None:
    """Register ``size`` GPUs (8 a node) in bulk, as node registration would."""
    from finops.fleet.models import Gpu, GpuModel, Node, Site

    site, _ = Site.objects.get_or_create(slug=f"cap-{prefix}", defaults={"provider": "on-prem"})
    h100 = GpuModel.objects.get(name="H100 SXM")
    nodes = Node.objects.bulk_create(
        Node(site=site, hostname=f"{prefix}-{i:06d}", price_override_per_gpu_hour=2)
        for i in range(size // 8)
    )
    Gpu.objects.bulk_create(
        (Gpu(node=node, uuid=f"GPU-{prefix}-{n * 8 + i:07d}", index=i, model=h100,
             vram_bytes=h100.vram_bytes) for n, node in enumerate(nodes) for i in range(8)),
        batch_size=5000,
    )  # fmt: skip


def _raw_bodies(size: int, prefix: str, minute: datetime) -> Iterator[bytes]:
    """Each GPU's 60 samples of ``minute``, 1,000 a gzip NDJSON body, hosts in turn."""
    lines: list[str] = []
    stamps = [(minute + timedelta(seconds=s)).isoformat().replace("+00:00", "Z") for s in range(60)]
    for g in range(size):
        uuid = f"GPU-{prefix}-{g:07d}"
        for s, ts in enumerate(stamps):
            lines.append(
                f'{{"gpu_uuid":"{uuid}","ts":"{ts}","sm_util_pct":{(g + s) % 100},'
                f'"mem_used_bytes":{70_000_000_000 + s},"mem_total_bytes":85520809984,'
                f'"power_w":512.5,"power_limit_w":700.0,"temp_c":70,"sm_clock_mhz":1840,'
                f'"sm_clock_max_mhz":1980,"clocks_event_reasons":{4 if s % 20 == 0 else 0},'
                f'"pcie_tx_bytes_per_s":1.0e9,"pcie_rx_bytes_per_s":3.3e8,'
                f'"energy_mj":{10**9 + (minute.timestamp() + s) * 512_500:.0f}}}'
            )
            if len(lines) == BATCH:
                yield gzip.compress("\n".join(lines).encode(), compresslevel=1)
                lines = []
    if lines:
        yield gzip.compress("\n".join(lines).encode(), compresslevel=1)


def _edge_bodies(size: int, prefix: str, minute: datetime) -> Iterator[bytes]:
    ts = minute.isoformat().replace("+00:00", "Z")
    for first in range(0, size, BATCH):
        lines = []
        for g in range(first, min(first + BATCH, size)):
            busy = 60.0 if g % 10 else 0.0
            util = (g % 100) if busy else 0
            # One GPU in a hundred under memory pressure (half the minute): alerts that fire,
            # not a fleet that all fires at once.
            pressure = 30.0 if busy and g % 100 == 1 else 0.0
            columns = MINUTE_COLUMNS_LINE % (busy, util, util, pressure)
            lines.append(f'{{"gpu_uuid":"GPU-{prefix}-{g:07d}","ts":"{ts}",{columns}}}')
        yield gzip.compress("\n".join(lines).encode(), compresslevel=1)


def _timed(stages: dict[str, float], name: str, work) -> object:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = work()
    stages[name] = time.perf_counter() - started
    return result


_BODIES: list[bytes] = []


def _ingest_share(mode: str, worker: int, workers: int) -> int:
    """Ingest every ``workers``-th body from ``worker`` on, as one web worker would."""
    from django.db import connections

    from finops.telemetry.ingest import gpu_minutes_ingest, gpu_samples_ingest

    service = gpu_samples_ingest if mode == "raw" else gpu_minutes_ingest
    accepted = 0
    try:
        for body in _BODIES[worker::workers]:
            result = service(body=body, content_encoding="gzip")
            assert not result.rejected, result.as_json()
            accepted += result.accepted
    finally:
        if workers > 1:
            connections.close_all()
    return accepted


def _ingest(mode: str, bodies: list[bytes], workers: int) -> int:
    """The bodies through the ingest service, in ``workers`` processes (forked, each with
    its own database connection, as gunicorn's workers are)."""
    global _BODIES
    _BODIES = bodies
    if workers == 1:
        return _ingest_share(mode, 0, 1)
    from django.db import connections

    connections.close_all()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        return sum(pool.starmap(_ingest_share, [(mode, w, workers) for w in range(workers)]))


def _minute_run(
    mode: str, size: int, minute: datetime, ledger_s_per_gpu_minute: float, workers: int
) -> dict[str, float]:
    from finops.alerts.evaluation import rules_evaluate
    from finops.telemetry.rollups import rollups_recompute

    prefix = f"{mode}{size}"
    from django.db import connection

    with connection.cursor() as cursor:
        # The server holds this fleet alone: the fleets of earlier sizes are gone.
        cursor.execute("TRUNCATE telemetry_gpusample, telemetry_gpuminute, telemetry_gpuhour, "
                       "alerts_notification, alerts_alert, fleet_gpu, fleet_node CASCADE")  # fmt: skip
    _fleet(size, prefix)
    with connection.cursor() as cursor:
        # Steady state: the alert rules' windows (up to 15 minutes) already hold the fleet's
        # minutes before this one.
        cursor.execute(
            "INSERT INTO telemetry_gpuminute (gpu_id, ts, samples, covered_s, busy_s, "
            "util_mean_pct, util_max_pct, mem_frac_mean, mem_frac_max, mem_pressure_s, "
            "throttle_power_cap_s, throttle_hw_slowdown_s, throttle_sw_thermal_s, "
            "throttle_hw_thermal_s, throttle_power_brake_s, energy_j, util_s, mem_s, clock_s, "
            "power_s, from_edge) "
            "SELECT g.id, m, 60, 60, 60, 50, 50, 0.9, 0.95, "
            "CASE WHEN g.id %% 100 = 1 THEN 30 ELSE 0 END, 0, 0, 0, 0, 0, 30000, 60, 60, 0, 0, "
            "true FROM fleet_gpu g CROSS JOIN generate_series(%s::timestamptz, "
            "%s::timestamptz, interval '1 minute') AS m",
            [minute - timedelta(minutes=15), minute - timedelta(minutes=1)],
        )
        # A server in steady state has its tables' statistics current (autovacuum analyses
        # them as they grow); here a whole fleet arrives between two measured minutes.
        cursor.execute("ANALYZE fleet_gpu, fleet_node, telemetry_gpuminute, telemetry_gpuhour, "
                       "telemetry_gpusample")  # fmt: skip
    stages: dict[str, float] = {}
    accepted = 0

    # The bodies are what agents send: made before the clock starts.
    bodies = list(
        _raw_bodies(size, prefix, minute) if mode == "raw" else _edge_bodies(size, prefix, minute)
    )

    table = "telemetry_gpusample" if mode == "raw" else "telemetry_gpuminute"
    before = _table_bytes(table)

    def ingest() -> None:
        nonlocal accepted
        accepted = _ingest(mode, bodies, workers)

    _timed(stages, "ingest_s", ingest)
    expected = size * 60 if mode == "raw" else size
    assert accepted == expected, (accepted, expected)
    stored_per_row = (_table_bytes(table) - before) / expected
    if mode == "raw":
        _timed(
            stages,
            "rollup_s",
            lambda: rollups_recompute(start=minute, end=minute + timedelta(minutes=1)),
        )
    else:
        stages["rollup_s"] = 0.0  # the hours were recomputed inside ingest
    _timed(stages, "alerts_s", lambda: rules_evaluate(now=minute + timedelta(minutes=1, seconds=2)))
    stages["ledger_share_s"] = ledger_s_per_gpu_minute * size
    stages["total_s"] = sum(stages.values())
    stages["stored_bytes_per_row"] = stored_per_row
    return stages


def _ledger_per_gpu_minute(minute: datetime) -> float:
    """Seconds of ledger recompute per GPU-minute: an hour of minute rows for 4,096 GPUs
    (no jobs: every paid hour idle), its day recomputed."""
    from django.db import connection

    from finops.costing.engine import ledger_recompute

    size, prefix = 4096, "ledger"
    _fleet(size, prefix)
    hour = minute.replace(minute=0) - timedelta(hours=2)
    with connection.cursor() as c:
        c.execute(
            "INSERT INTO telemetry_gpuminute (gpu_id, ts, samples, covered_s, busy_s, util_mean_pct, "
            "util_max_pct, mem_pressure_s, throttle_power_cap_s, throttle_hw_slowdown_s, "
            "throttle_sw_thermal_s, throttle_hw_thermal_s, throttle_power_brake_s, energy_j, util_s, "
            "mem_s, clock_s, power_s, from_edge) "
            "SELECT g.id, m, 60, 60, 60, 50, 50, 0, 0, 0, 0, 0, 0, 30000, 60, 0, 0, 0, true "
            "FROM fleet_gpu g CROSS JOIN generate_series(%s::timestamptz, %s::timestamptz - "
            "interval '1 minute', interval '1 minute') AS m WHERE g.uuid LIKE 'GPU-ledger-%%'",
            [hour, hour + timedelta(hours=1)],
        )
    from finops.telemetry.rollups import hours_recompute

    hours_recompute(start=hour, end=hour + timedelta(hours=1))
    started = time.perf_counter()
    ledger_recompute(start=hour, end=hour + timedelta(hours=1))
    return (time.perf_counter() - started) / (size * 60)


def _table_bytes(table: str) -> int:
    from django.db import connection

    with connection.cursor() as c:
        # A partitioned table holds nothing itself: its partitions do.
        c.execute("SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%s)", [table])
        return int(c.fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-start", type=int, default=2048)
    parser.add_argument("--edge-start", type=int, default=16384)
    parser.add_argument("--raw-max", type=int, default=131072)
    parser.add_argument("--edge-max", type=int, default=524288)
    parser.add_argument(
        "--ingest-workers",
        type=int,
        default=3,
        help="processes ingesting at once, as web workers do (2 cores: 3; docs/scaling.md)",
    )
    parser.add_argument(
        "--refine",
        type=int,
        default=2,
        help="bisections between the last size within the minute and the first beyond it",
    )
    parser.add_argument("--modes", default="edge,raw", help="edge, raw or both")
    args = parser.parse_args()
    if args.ingest_workers < 1 or args.refine < 0:
        parser.error("--ingest-workers must be at least 1 and --refine at least 0")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"edge", "raw"}:
        parser.error("--modes: edge, raw or edge,raw")

    from django.conf import settings

    found: dict[str, tuple[int, dict[str, float]]] = {}
    storage: dict[str, float] = {}
    ledger = 0.0
    # Each mode in a database of its own: one mode's fleet and alerts do not weigh on the
    # other's minute.
    for mode, size, limit in (("edge", args.edge_start, args.edge_max),
                              ("raw", args.raw_start, args.raw_max)):  # fmt: skip
        if mode not in modes:
            continue
        with bench_database(f"capacity_{mode}"):
            now = datetime.now(UTC).replace(second=0, microsecond=0)
            if not ledger:
                ledger = _ledger_per_gpu_minute(now - timedelta(hours=3))
                print(f"ledger share: {ledger * 1e6:.2f} µs per GPU-minute (a day's recompute "
                      f"over an hour of 4,096 GPUs' minutes)", flush=True)  # fmt: skip
            tried: dict[int, dict[str, float]] = {}

            def within(
                size: int,
                mode: str = mode,
                now: datetime = now,
                tried: dict[int, dict[str, float]] = tried,
                ledger: float = ledger,
            ) -> bool:
                minute = now - timedelta(minutes=30 - 2 * len(tried))
                stages = _minute_run(mode, size, minute, ledger, args.ingest_workers)
                tried[size] = stages
                storage[mode] = stages.pop("stored_bytes_per_row")
                print(
                    f"  {mode} {size:>7,} GPUs: "
                    + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()),
                    flush=True,
                )
                return stages["total_s"] <= BUDGET_S  # fmt: skip

            # Double until a minute takes longer than the budget, then halve the interval
            # between the last size within it and the first beyond it, --refine times.
            low, over = 0, 0
            while size <= limit:
                if not within(size):
                    over = size
                    break
                low = size
                size *= 2
            for _ in range(args.refine if over and low else 0):
                middle = (low + over) // 2 // 1024 * 1024
                if middle in (low, over):
                    break
                if within(middle):
                    low = middle
                else:
                    over = middle
            if low:
                found[mode] = (low, tried[low])
    figures: dict[str, object] = {"bench": "capacity", "ingest_workers": args.ingest_workers}
    for mode in modes:
        size, stages = found.get(mode, (0, {}))
        name = "fleet_capacity_gpus_edge" if mode == "edge" else "fleet_capacity_gpus_raw_1hz"
        figures[name] = size
        figures[f"stages_at_capacity_{mode}"] = {k: round(v, 2) for k, v in stages.items()}
    retention = settings.TELEMETRY_RAW_RETENTION_DAYS
    # Minutes are kept TELEMETRY_MINUTE_RETENTION_DAYS (0: for ever, counted as a year).
    minute_days = settings.TELEMETRY_MINUTE_RETENTION_DAYS or 365
    edge_day = storage.get("edge", 0.0) * 1440
    raw_day = storage.get("raw", 0.0) * 86400
    if edge_day:
        figures["stored_bytes_per_gpu_day_edge"] = round(edge_day)
        figures["gpus_per_tb_edge"] = round(1e12 / (minute_days * edge_day))
    if raw_day:
        figures["stored_bytes_per_gpu_day_raw"] = round(raw_day)
    if edge_day and raw_day:
        figures["edge_vs_raw_bytes"] = round(edge_day / raw_day, 4)
        figures["gpus_per_tb_raw"] = round(1e12 / (retention * raw_day + minute_days * edge_day))
    figures |= {
        "ledger_us_per_gpu_minute": round(ledger * 1e6, 3),
        "targets": {"fleet_capacity_gpus_edge": 200_000, "fleet_capacity_gpus_raw_1hz": 50_000,
                    "edge_vs_raw_bytes": 1 / 30},
    }  # fmt: skip
    summary = [f"{m} {found.get(m, (0, {}))[0]:,} GPUs" for m in modes]
    print(f"capacity with {args.ingest_workers} ingest worker(s): {', '.join(summary)} "
          f"(targets: edge 200,000, raw 50,000)", flush=True)  # fmt: skip
    if edge_day and raw_day:
        print(f"storage per GPU-day: edge {edge_day:,.0f} B, raw {raw_day:,.0f} B "
              f"({edge_day / raw_day:.4f} of raw, target <= 1/30)")  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
