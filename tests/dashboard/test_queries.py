"""No dashboard page runs a query per row: each page's query count with the hand-checked
fleet is an upper bound for the same page over a fleet with many more nodes, GPUs, jobs,
clips, storage devices and findings (the counts do not grow with the rows)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from finops.costing.engine import ledger_recompute
from finops.fleet.models import Gpu, GpuModel, Node, Site, StorageDevice
from finops.insights.models import Finding
from finops.jobs.models import JobStatus
from finops.jobs.services import AllocationIn, job_record
from finops.telemetry.models import GpuHour, GpuMinute, StorageSample
from tests.costing import scenario

WINDOW = {"window": "2026-11-02T00:00:00Z,2026-11-03T00:00:00Z"}
PAGES = [
    ("/", WINDOW),
    ("/teams/studio-a/", WINDOW),
    ("/teams/studio-a/", {**WINDOW, "by": "model_version"}),
    ("/teams/studio-a/", {**WINDOW, "format": "csv", "table": "jobs"}),
    ("/fleet/", WINDOW),
    ("/nodes/gpu-a/", WINDOW),
    ("/findings/", {"window": "2026-11-01T00:00:00Z,2026-11-04T00:00:00Z"}),
]


def _grow(team_a, team_b, n: int) -> None:  # type: ignore[no-untyped-def]
    """``n`` more nodes of two GPUs each, with telemetry, storage, jobs (half of them
    retries of a clip), and findings."""
    h100 = GpuModel.objects.get(name="H100 SXM")
    site = Site.objects.get(slug="aws-use1")
    node_a = Node.objects.get(hostname="gpu-a")
    for i in range(n):
        node = Node.objects.create(site=site, hostname=f"more-{i}", instance_type="p5.48xlarge")
        device = StorageDevice.objects.create(node=node, name=f"nvme{i}", kind="nvme")
        for g in range(2):
            gpu = Gpu.objects.create(node=node, uuid=f"GPU-M{i}-{g}", index=g, model=h100)
            for hour in (scenario.T10, scenario.T11):
                GpuHour.objects.create(gpu=gpu, ts=hour, samples=3600, covered_s=3600,
                                       busy_s=1800, util_mean_pct=50.0)  # fmt: skip
        for minute in range(3):
            StorageSample.objects.create(device=device, ts=scenario.T10 + timedelta(minutes=minute),
                                         await_ms=2.0 + minute, util_pct=40.0)  # fmt: skip
    gpus = list(Gpu.objects.filter(node=node_a))
    for minute in range(30):
        for gpu in gpus:
            GpuMinute.objects.create(gpu=gpu, ts=scenario.T10 + timedelta(minutes=minute),
                                     samples=60, covered_s=60, busy_s=60, util_mean_pct=90.0)  # fmt: skip
    for j in range(3 * n):
        start = scenario.at(10, j % 50)
        team = team_a if j % 3 else team_b
        job_record(
            source="farm-2", external_id=f"M{j}", team=team, status=JobStatus.SUCCEEDED,
            clip_id=f"m{j // 2}", project=f"p{j % 4}", model_name=f"model-{j % 3}",
            model_version=f"v{j % 2}", started_at=start, finished_at=start + timedelta(minutes=5),
            frames=81, fps=16.0, usable=bool(j % 2),
            allocations=[AllocationIn(uuid=gpus[j % len(gpus)].uuid, start=start,
                                      end=start + timedelta(minutes=5))],
        )  # fmt: skip
        Finding.objects.create(pattern="idle_capacity", scope_kind="team", scope_key=f"f{j}",
                               team=team, window_start=scenario.T10, window_end=scenario.T12,
                               dedup_key=f"f{j}", first_seen_at=scenario.T10,
                               last_seen_at=scenario.T12)  # fmt: skip
    ledger_recompute(start=scenario.T10, end=scenario.T12)


def _counts(client) -> dict[str, int]:  # type: ignore[no-untyped-def]
    counts = {}
    for path, params in PAGES:
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, params)
        assert response.status_code == 200, (path, response.content[:300])
        counts[f"{path} {params}"] = len(queries.captured_queries)
    return counts


@pytest.mark.django_db
def test_no_page_runs_a_query_per_row(client, team_a, team_b, root):
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    client.force_login(root)
    few = _counts(client)
    _grow(team_a, team_b, 12)
    many = _counts(client)
    assert many == few
    node_page = client.get("/nodes/gpu-a/", WINDOW).content.decode()
    assert node_page.count("farm-2:M") + node_page.count("farm-1:J") == 25  # one full page
    team_page = client.get("/teams/studio-a/", WINDOW).content.decode()
    assert "Page 1 of" in team_page
