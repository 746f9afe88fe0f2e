"""Telemetry partitions on PostgreSQL: created ahead and on demand (moving what the default
partition held), dropped by retention with the rollups kept, and the migration converts a
populated database without losing a row."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.db import connection

from collectors.records import GpuSample as Sample
from finops.fleet.models import Gpu, Node, Site
from finops.telemetry import partitions
from finops.telemetry.ingest import gpu_samples_store
from finops.telemetry.models import GpuHour, GpuMinute, GpuSample
from finops.telemetry.partitions import (
    GPU_MINUTES,
    GPU_SAMPLES,
    partition_ensure,
    partitions_ahead,
    partitions_of,
)
from finops.telemetry.services import minutes_purge, raw_samples_purge
from tests.gunicorn_server import database_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _forget_known_partitions() -> None:
    partitions._known.clear()  # a rolled-back test's partitions are gone


@pytest.fixture
def gpu(db: None) -> Gpu:
    node = Node.objects.create(site=Site.objects.create(slug="lab", provider="on-prem"),
                               hostname="lab-1")  # fmt: skip
    return Gpu.objects.create(node=node, uuid="GPU-p", index=0)


def _where(ts: datetime) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM telemetry_gpusample WHERE ts = %s", [ts]
        )
        return str(cursor.fetchone()[0])


@pytest.mark.django_db
def test_partitions_are_created_ahead_once():
    now = datetime.now(UTC)
    partitions_ahead(now=now, days=3)
    names = {name for name, _, _ in partitions_of(GPU_SAMPLES)}
    for day in range(4):
        assert GPU_SAMPLES.name(GPU_SAMPLES.floor(now + timedelta(days=day))) in names
    assert GPU_MINUTES.name(GPU_MINUTES.floor(now)) in {n for n, _, _ in partitions_of(GPU_MINUTES)}
    partitions._known.clear()
    assert set(partitions_ahead(now=now, days=3).values()) == {0}  # already there


def test_ingest_creates_the_day_it_needs_and_moves_what_the_default_held(gpu):
    day = datetime(2025, 3, 10, tzinfo=UTC)  # long before any partition made ahead
    early = GpuSample.objects.create(gpu=gpu, ts=day + timedelta(hours=1), sm_util_pct=10)
    assert _where(early.ts) == "telemetry_gpusample_default"
    batch = [(n, Sample(gpu_uuid="GPU-p", ts=day + timedelta(hours=2, seconds=n), sm_util_pct=50.0))
             for n in range(1, 4)]  # fmt: skip
    result = gpu_samples_store(records=batch)
    assert result.accepted == 3
    name = "telemetry_gpusample_p20250310"
    assert {_where(early.ts), *(_where(s.ts) for _, s in batch)} == {name}
    assert GpuSample.objects.filter(ts__gte=day, ts__lt=day + timedelta(days=1)).count() == 4
    # The same batch again: duplicates, not stored twice, in the partition as in the default.
    again = gpu_samples_store(records=batch)
    assert (again.accepted, again.duplicate) == (0, 3)
    assert partition_ensure(GPU_SAMPLES, day) is False


def test_retention_drops_whole_days_and_keeps_rollups(gpu):
    cutoff = datetime(2025, 4, 20, 12, tzinfo=UTC)
    for hours in (-50, -30, -13, -1, 1, 30):
        ts = cutoff + timedelta(hours=hours)
        partition_ensure(GPU_SAMPLES, ts)
        GpuSample.objects.create(gpu=gpu, ts=ts, sm_util_pct=50)
    GpuHour.objects.create(gpu=gpu, ts=cutoff - timedelta(days=3), busy_s=600)
    counts = raw_samples_purge(before=cutoff)
    # 2025-04-18 and -19 end before the cut-off: dropped whole; the cut-off day's earlier
    # row is deleted on its own.
    assert counts["gpu_sample_partitions_dropped"] == 2
    assert counts["gpu_samples"] == 1
    assert sorted(s.ts for s in GpuSample.objects.all()) == [
        cutoff + timedelta(hours=1), cutoff + timedelta(hours=30)]  # fmt: skip
    names = {n for n, _, _ in partitions_of(GPU_SAMPLES)}
    assert "telemetry_gpusample_p20250419" not in names and "telemetry_gpusample_p20250420" in names
    assert GpuHour.objects.count() == 1

    for month in (1, 2, 5):
        ts = datetime(2025, month, 3, tzinfo=UTC)
        partition_ensure(GPU_MINUTES, ts)
        GpuMinute.objects.create(gpu=gpu, ts=ts, samples=1, covered_s=60)
    with connection.cursor() as cursor:  # the rows' deferred key checks, as a commit would
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    dropped = minutes_purge(before=datetime(2025, 3, 1, tzinfo=UTC))
    assert dropped == {"gpu_minute_partitions_dropped": 2, "gpu_minutes": 0}
    assert list(GpuMinute.objects.values_list("ts", flat=True)) == [
        datetime(2025, 5, 3, tzinfo=UTC)
    ]


def _manage(url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": url, "CELERY_BROKER_URL": "memory://"}
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,  # noqa: S603
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


POPULATE = """
from datetime import UTC, datetime, timedelta
from finops.fleet.models import Gpu, Node, Site
from finops.telemetry.models import GpuMinute, GpuSample, StorageDevice, StorageSample
node = Node.objects.create(site=Site.objects.create(slug="m", provider="aws"), hostname="m-1")
gpus = [Gpu.objects.create(node=node, uuid=f"GPU-m{i}", index=i) for i in range(3)]
device = StorageDevice.objects.create(node=node, name="nvme0n1")
t0 = datetime(2026, 10, 28, tzinfo=UTC)
GpuSample.objects.bulk_create(GpuSample(gpu=g, ts=t0 + timedelta(minutes=7 * n), sm_util_pct=n % 100,
    energy_mj=n) for g in gpus for n in range(2000))
StorageSample.objects.bulk_create(StorageSample(device=device, ts=t0 + timedelta(minutes=5 * n),
    util_pct=n % 100) for n in range(3000))
GpuMinute.objects.bulk_create(GpuMinute(gpu=g, ts=t0 + timedelta(minutes=11 * n), samples=1,
    covered_s=60, busy_s=n % 60) for g in gpus for n in range(6000))
"""
TABLES = ("telemetry_gpusample", "telemetry_storagesample", "telemetry_gpuminute")


def _fingerprints(url: str) -> dict[str, tuple[int, int]]:
    with psycopg.connect(url) as conn:
        return {
            table: conn.execute(
                f"SELECT count(*), coalesce(sum(hashtext(t::text)::bigint), 0) FROM {table} t"  # noqa: S608
            ).fetchone()
            for table in TABLES
        }


@pytest.mark.django_db
def test_the_migration_keeps_every_row_of_a_populated_database(settings):
    base = urlsplit(database_url(settings.DATABASES))
    name = f"{base.path.lstrip('/')}_partition_migration"
    admin = urlunsplit(base._replace(path="/postgres"))
    url = urlunsplit(base._replace(path=f"/{name}"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        # The telemetry tables as they were before 0007 (and what they depend on).
        _manage(url, "migrate", "telemetry", "0006", "--no-input")
        _manage(url, "migrate", "auditlog", "--no-input")  # node writes are audited
        _manage(url, "shell", "-c", POPULATE)
        before = _fingerprints(url)
        assert before["telemetry_gpusample"][0] == 6000
        _manage(url, "migrate", "--no-input")
        assert _fingerprints(url) == before
        with psycopg.connect(url) as conn:
            kinds = dict(conn.execute(
                "SELECT relname, relkind FROM pg_class WHERE relname = ANY(%s)", [list(TABLES)]
            ).fetchall())  # fmt: skip
            assert kinds == dict.fromkeys(TABLES, "p")  # partitioned
            in_default = conn.execute("SELECT count(*) FROM telemetry_gpusample_default").fetchone()
            assert in_default == (0,)  # every day of the data has its partition
            # Ingest goes on: a new row takes the next id.
            conn.execute("INSERT INTO telemetry_gpusample (gpu_id, ts, sm_util_pct, source) "
                         "SELECT id, now(), 5, 'nvml' FROM fleet_gpu LIMIT 1")  # fmt: skip
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
