"""The embedded demo runs on SQLite: its ingest write path and rollup dialect must work
there too. Run in a subprocess against a throw-away SQLite file (the suite itself uses
PostgreSQL)."""

from __future__ import annotations

from tests.sqlite_demo import run_on_sqlite

SCRIPT = """
import json
from datetime import timedelta
from django.core.management import call_command
from django.utils import timezone
call_command("migrate", verbosity=0)
from collectors.records import GpuSample
from finops.fleet.models import Gpu, Node, Site
from finops.telemetry.ingest import gpu_samples_store
from finops.telemetry.models import GpuHour, GpuMinute, GpuSample as Row
from finops.telemetry.rollups import rollups_recompute
node = Node.objects.create(site=Site.objects.create(slug="lab", provider="on-prem"), hostname="lab-1")
Gpu.objects.create(node=node, uuid="GPU-1", index=0, vram_bytes=80 * 2**30)
t0 = (timezone.now() - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
batch = [(i, GpuSample(gpu_uuid="GPU-1", ts=t0 + timedelta(seconds=i), sm_util_pct=80.0 if i < 90 else 0.0,
          clocks_event_reasons=4 if i < 30 else 0, energy_mj=1000 * i)) for i in range(120)]
first = gpu_samples_store(records=batch)
again = gpu_samples_store(records=batch[:10])
counts = rollups_recompute(start=t0, end=t0 + timedelta(minutes=2))
minute = GpuMinute.objects.order_by("ts").first()
print(json.dumps({"accepted": first.accepted, "duplicate": again.duplicate, "rows": Row.objects.count(),
                  "counts": counts, "busy_s": minute.busy_s, "power_cap_s": minute.throttle_power_cap_s,
                  "energy_j": minute.energy_j, "hour_busy_s": GpuHour.objects.get().busy_s}))
"""


def test_ingest_and_rollups_on_the_embedded_sqlite_database(tmp_path):
    result = run_on_sqlite(SCRIPT, tmp_path)
    assert result["accepted"] == 120
    assert result["duplicate"] == 10
    assert result["rows"] == 120
    assert result["counts"] == {"minutes": 2, "hours": 1}
    assert result["busy_s"] == 60
    assert result["power_cap_s"] == 30
    assert result["energy_j"] == 60  # the increase to 10:01:00 was drawn in minute 10:00
    assert result["hour_busy_s"] == 90
