from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from finops.costing.models import DirtyWindow, LedgerDay, LedgerEntry
from finops.fleet.models import Gpu, Node, Site
from finops.jobs.models import GpuAllocation, RenderJob

pytestmark = pytest.mark.django_db

EVENT = {
    "source": "farm-1", "external_id": "job-123", "team": "studio-a", "project": "trailer",
    "clip_id": "clip-9", "model": "wan2.1-t2v-1.3b", "model_version": "2.1", "status": "running",
    "queued_at": "2026-11-02T09:59:00Z", "started_at": "2026-11-02T10:00:00Z",
    "frames": 81, "fps": 16, "width": 832, "height": 480, "steps": 50,
    "gpus": [{"uuid": "GPU-5fd4", "start": "2026-11-02T10:00:00Z", "end": None}],
    "peak_vram_bytes": 70000000000,
}  # fmt: skip


@pytest.fixture
def farm(api, make_key, team_a, team_b):  # type: ignore[no-untyped-def]
    node = Node.objects.create(
        site=Site.objects.create(slug="s", provider="aws"), hostname="gpu-a1"
    )
    Gpu.objects.create(node=node, uuid="GPU-5fd4", index=0)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('ingest:write', 'read')}")
    return api


def test_job_events_are_idempotent_and_update_the_job(farm):
    assert farm.post("/api/v1/jobs", EVENT, format="json").status_code == 201
    again = farm.post("/api/v1/jobs", EVENT, format="json")
    assert again.status_code == 200
    done = {**EVENT, "status": "succeeded", "finished_at": "2026-11-02T10:20:00Z", "usable": True,
            "quality_score": 0.97,
            "gpus": [{"uuid": "GPU-5fd4", "start": "2026-11-02T10:00:00Z", "end": "2026-11-02T10:20:00Z"}]}  # fmt: skip
    body = farm.post("/api/v1/jobs", done, format="json").json()
    assert (body["status"], body["usable"], body["clip_id"], body["team"]) == (
        "succeeded",
        True,
        "clip-9",
        "studio-a",
    )
    assert RenderJob.objects.count() == 1
    assert GpuAllocation.objects.get().end.minute == 20
    assert DirtyWindow.objects.filter(window_start__hour=10).exists()


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"finished_at": "2026-11-02T09:00:00Z", "status": "failed"}, "finished_at", "before started_at"),
        ({"gpus": [{"uuid": "GPU-nope", "start": "2026-11-02T10:00:00Z"}]}, "gpus", "unknown GPU 'GPU-nope'"),
        ({"gpus": [{"uuid": "GPU-5fd4", "start": "2026-11-02T10:00:00Z", "end": "2026-11-02T10:30:00Z"},
                   {"uuid": "GPU-5fd4", "start": "2026-11-02T10:10:00Z", "end": "2026-11-02T10:40:00Z"}]},
         "gpus", "overlaps gpus[0]"),
        ({"status": "exploded"}, "status", ""),
        ({"team": "nobody"}, "team", "no such team"),
        ({"quality_score": 1.5}, "quality_score", ""),
    ],
)  # fmt: skip
def test_contradictions_are_rejected_naming_the_field(farm, change, field, text):
    response = farm.post("/api/v1/jobs", {**EVENT, **change}, format="json")
    assert response.status_code == 400
    fields = response.json()["extra"]["fields"]
    assert field in fields
    assert text in str(fields[field])
    assert not RenderJob.objects.exists()


def test_status_never_moves_backwards(farm):
    farm.post(
        "/api/v1/jobs",
        {**EVENT, "status": "succeeded", "finished_at": "2026-11-02T10:20:00Z"},
        format="json",
    )
    back = farm.post("/api/v1/jobs", EVENT, format="json")
    assert back.status_code == 400
    assert "cannot go from succeeded back to running" in back.json()["extra"]["fields"]["status"][0]
    other_end = farm.post("/api/v1/jobs", {**EVENT, "status": "oom"}, format="json")
    assert "already ended as succeeded" in other_end.json()["extra"]["fields"]["status"][0]


def test_a_person_judges_a_clip_later(farm):
    farm.post(
        "/api/v1/jobs",
        {**EVENT, "status": "succeeded", "finished_at": "2026-11-02T10:20:00Z"},
        format="json",
    )
    response = farm.patch(
        "/api/v1/jobs/farm-1/job-123", {"usable": False, "quality_score": 0.2}, format="json"
    )
    assert response.status_code == 200
    assert RenderJob.objects.get().usable is False


def test_team_restricted_key_cannot_report_another_team(api, make_key, team_a, team_b, farm):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('ingest:write', team=team_b)}")
    response = api.post("/api/v1/jobs", EVENT, format="json")
    assert response.status_code == 403
    assert "studio-b" in response.json()["message"]


def test_listing_filters_and_paginates(farm):
    for i in range(5):
        farm.post("/api/v1/jobs", {**EVENT, "external_id": f"job-{i}", "gpus": []}, format="json")
    page = farm.get("/api/v1/jobs", {"page_size": 2, "status": "running"}).json()
    assert len(page["results"]) == 2
    assert page["next"]
    rest = farm.get(page["next"]).json()
    assert len(rest["results"]) == 2
    assert farm.get("/api/v1/jobs", {"status": "bogus"}).status_code == 400


def test_recompute_costs_command(farm):
    farm.post("/api/v1/jobs", {**EVENT, "status": "succeeded", "finished_at": "2026-11-02T10:30:00Z",
                               "gpus": [{"uuid": "GPU-5fd4", "start": "2026-11-02T10:00:00Z",
                                         "end": "2026-11-02T10:30:00Z"}]}, format="json")  # fmt: skip
    Node.objects.update(price_override_per_gpu_hour=2)
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "recompute_costs",
        "--from=2026-11-02T00:00Z",
        "--to=2026-11-03T00:00Z",
        stdout=out,
        stderr=err,
    )
    assert "Recomputed" in out.getvalue()
    assert "(1/1)" in err.getvalue()  # one UTC day
    assert LedgerEntry.objects.filter(job__external_id="job-123").get().amount == 1
    with pytest.raises(CommandError, match="--to must be after --from"):
        call_command("recompute_costs", "--from=2026-11-03T00:00Z", "--to=2026-11-02T00:00Z")


@pytest.mark.django_db(transaction=True)
def test_recompute_costs_in_parallel_matches_one_process(farm):
    # A job across midnight: two UTC days, one per worker process.
    farm.post("/api/v1/jobs", {**EVENT, "status": "succeeded", "started_at": "2026-11-02T20:00:00Z",
                               "finished_at": "2026-11-03T04:00:00Z",
                               "gpus": [{"uuid": "GPU-5fd4", "start": "2026-11-02T20:00:00Z",
                                         "end": "2026-11-03T04:00:00Z"}]}, format="json")  # fmt: skip
    Node.objects.update(price_override_per_gpu_hour=2)

    def ledger(workers: int) -> list[tuple]:
        call_command("recompute_costs", "--from=2026-11-02T00:00Z", "--to=2026-11-04T00:00Z",
                     f"--workers={workers}", stdout=io.StringIO(), stderr=io.StringIO())  # fmt: skip
        return sorted(
            LedgerEntry.objects.values_list(
                "window_start", "activity", "bucket", "component", "amount"
            )
        )

    parallel = ledger(2)
    assert parallel == ledger(1)
    job_cost = sum(a for _, _, bucket, _, a in parallel if bucket == "team")
    assert job_cost == 16  # 8 hours at 2 per GPU-hour
    assert LedgerDay.objects.values("day").distinct().count() == 2
    with pytest.raises(CommandError, match="--workers"):
        call_command(
            "recompute_costs", "--from=2026-11-02T00:00Z", "--to=2026-11-03T00:00Z", "--workers=0"
        )
