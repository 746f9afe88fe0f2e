from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings

from finops.fleet.models import Gpu, StorageDevice
from finops.telemetry.models import GpuSample, RollupBacklog, StorageSample

pytestmark = pytest.mark.django_db

H100 = "NVIDIA H100 80GB HBM3"
NODE = {
    "hostname": "gpu-a1",
    "site": "aws-us-east-1",
    "provider": "aws",
    "region": "us-east-1",
    "instance_type": "p5.48xlarge",
    "pricing_model": "on-demand",
    "interconnect": "nvlink",
    "gpus": [
        {"uuid": "GPU-0", "index": 0, "model": H100, "mem_total_bytes": 85520809984},
        {"uuid": "GPU-1", "index": 1, "model": H100, "mem_total_bytes": 85520809984},
    ],
}


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _ts(seconds_ago: float) -> str:
    return (_now() - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def ingest(api, make_key):  # type: ignore[no-untyped-def]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('ingest:write')}")
    assert api.post("/api/v1/nodes", NODE, format="json").status_code == 201
    return api


def _post_ndjson(api, path, lines, **extra):  # type: ignore[no-untyped-def]
    body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return api.generic("POST", path, body, content_type="application/x-ndjson", **extra)


def test_node_registration_is_idempotent_and_matches_the_catalog(ingest):
    again = ingest.post("/api/v1/nodes", NODE, format="json")
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert [g["model"] for g in again.json()["gpus"]] == ["H100 SXM", "H100 SXM"]
    assert Gpu.objects.count() == 2


def test_reregistration_retires_a_removed_gpu_and_takes_a_replacement(ingest):
    replaced = {**NODE, "gpus": [NODE["gpus"][0], {"uuid": "GPU-9", "index": 1, "model": H100}]}
    body = ingest.post("/api/v1/nodes", replaced, format="json").json()
    assert [g["uuid"] for g in body["gpus"]] == ["GPU-0", "GPU-9"]
    assert Gpu.objects.get(uuid="GPU-1").retired_at is not None


def test_node_registration_errors_name_the_field(ingest):
    bad = {**NODE, "provider": "moon", "gpus": [{"uuid": "GPU-0", "index": -1, "colour": "red"}]}
    response = ingest.post("/api/v1/nodes", bad, format="json")
    assert response.status_code == 400
    fields = response.json()["extra"]["fields"]
    assert "provider" in fields
    assert "index" in fields["gpus"]["0"]


def test_unknown_gpu_model_name_is_kept_and_warned(ingest):
    node = {
        **NODE,
        "hostname": "lab-1",
        "gpus": [{"uuid": "GPU-X", "index": 0, "model": "NVIDIA H100 NVL"}],
    }
    body = ingest.post("/api/v1/nodes", node, format="json").json()
    assert body["gpus"][0]["model"] is None
    assert "NVIDIA H100 NVL" in body["warnings"][0]


def test_good_lines_are_stored_and_bad_lines_reported_by_line_and_field(ingest):
    lines = [
        {"gpu_uuid": "GPU-0", "ts": _ts(10), "sm_util_pct": 87.0, "mem_used_bytes": 61203283968,
         "mem_total_bytes": 85520809984, "power_w": 612.4, "clocks_event_reasons": 4},
        '{"gpu_uuid": "GPU-0", "ts": "' + _ts(9) + '", "sm_util_pct": NaN}',
        {"gpu_uuid": "GPU-0", "ts": _ts(8), "mem_used_bytes": -5},
        {"gpu_uuid": "GPU-0", "ts": _ts(-3600), "sm_util_pct": 1},
        {"gpu_uuid": "GPU-0", "ts": _ts(7), "sm_util_pct": 1, "fan_rpm": 9000},
        "{not json",
        {"gpu_uuid": "GPU-0", "ts": "2026-11-23 10:00:00", "sm_util_pct": 1},
        {"gpu_uuid": "GPU-1", "ts": _ts(6)},
        {"gpu_uuid": "GPU-0", "ts": _ts(5), "sm_util_pct": 50.0},
    ]  # fmt: skip
    response = _post_ndjson(ingest, "/api/v1/ingest/gpu-samples", lines)
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (2, 0, 7)
    by_line = {e["line"]: e for e in body["errors"]}
    assert by_line[2]["field"] == "sm_util_pct" and "finite" in by_line[2]["message"]
    assert by_line[3]["field"] == "mem_used_bytes" and "out of range" in by_line[3]["message"]
    assert by_line[4]["field"] == "ts" and "future" in by_line[4]["message"]
    assert by_line[5]["field"] == "fan_rpm" and "unknown field" in by_line[5]["message"]
    assert by_line[6]["field"] == "(line)" and "JSON" in by_line[6]["message"]
    assert by_line[7]["field"] == "ts" and "time zone" in by_line[7]["message"]
    assert by_line[8]["field"] == "(record)" and "measurement" in by_line[8]["message"]
    assert sorted(GpuSample.objects.values_list("sm_util_pct", flat=True)) == [50.0, 87.0]


def test_duplicates_are_counted_never_stored_twice(ingest):
    first = [{"gpu_uuid": "GPU-0", "ts": _ts(s), "sm_util_pct": 10.0} for s in (30, 20)]
    assert _post_ndjson(ingest, "/api/v1/ingest/gpu-samples", first).json()["accepted"] == 2
    # One already stored, one repeated inside the batch, one new.
    second = [
        {"gpu_uuid": "GPU-0", "ts": _ts(20), "sm_util_pct": 99.0},
        {"gpu_uuid": "GPU-0", "ts": _ts(10), "sm_util_pct": 11.0},
        {"gpu_uuid": "GPU-0", "ts": _ts(10), "sm_util_pct": 12.0},
    ]
    body = _post_ndjson(ingest, "/api/v1/ingest/gpu-samples", second).json()
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (1, 2, 0)
    assert sorted(GpuSample.objects.values_list("sm_util_pct", flat=True)) == [10.0, 10.0, 11.0]


def test_json_array_and_gzip_are_accepted(ingest):
    batch = [{"gpu_uuid": f"GPU-{i}", "ts": _ts(3), "sm_util_pct": 5.0} for i in (0, 1)]
    response = ingest.generic(
        "POST",
        "/api/v1/ingest/gpu-samples",
        gzip.compress(json.dumps(batch).encode()),
        content_type="application/json",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.json()["accepted"] == 2


def test_bad_gzip_and_gzip_bombs_are_refused(ingest):
    response = ingest.generic(
        "POST", "/api/v1/ingest/gpu-samples", b"\x1f\x8bnot gzip", HTTP_CONTENT_ENCODING="gzip"
    )
    assert response.status_code == 400
    assert "gzip" in response.json()["message"]
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=4096):
        bomb = gzip.compress(b" " * 100_000)
        response = ingest.generic(
            "POST", "/api/v1/ingest/gpu-samples", bomb, HTTP_CONTENT_ENCODING="gzip"
        )
    assert response.status_code == 413
    assert "4096-byte limit" in response.json()["message"]


def test_all_lines_rejected_is_400_with_details(ingest):
    response = _post_ndjson(ingest, "/api/v1/ingest/gpu-samples", [{"gpu_uuid": "GPU-0"}])
    assert response.status_code == 400
    assert response.json()["extra"]["errors"][0] == {
        "line": 1,
        "field": "ts",
        "message": "is required",
    }


def test_unknown_gpu_is_rejected_by_default(ingest):
    body = _post_ndjson(
        ingest, "/api/v1/ingest/gpu-samples",
        [{"gpu_uuid": "GPU-0", "ts": _ts(2), "sm_util_pct": 1.0},
         {"gpu_uuid": "GPU-ghost", "ts": _ts(2), "sm_util_pct": 1.0}],
    ).json()  # fmt: skip
    assert body["accepted"] == 1
    assert body["errors"] == [
        {"line": 2, "field": "gpu_uuid",
         "message": "unknown GPU 'GPU-ghost': register its node with POST /api/v1/nodes"}
    ]  # fmt: skip


@override_settings(TELEMETRY_UNKNOWN_GPU="register")
def test_unknown_gpu_can_be_registered_under_unassigned(ingest):
    body = _post_ndjson(
        ingest,
        "/api/v1/ingest/gpu-samples",
        [{"gpu_uuid": "GPU-ghost", "ts": _ts(2), "power_w": 70.0}],
    ).json()
    assert body["accepted"] == 1
    assert Gpu.objects.get(uuid="GPU-ghost").node.hostname == "unassigned"


def test_late_samples_queue_a_rollup_backlog(ingest):
    _post_ndjson(
        ingest,
        "/api/v1/ingest/gpu-samples",
        [{"gpu_uuid": "GPU-0", "ts": _ts(7200), "sm_util_pct": 1.0}],
    )
    backlog = RollupBacklog.objects.get()
    assert backlog.start <= _now() - timedelta(seconds=7200) < backlog.end


def test_ingest_needs_the_ingest_scope(api, make_key):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('read')}")
    assert api.post("/api/v1/ingest/gpu-samples", [], format="json").status_code == 403


def test_storage_samples_register_devices_on_known_nodes(ingest):
    lines = [
        {"hostname": "gpu-a1", "device": "nvme0n1", "ts": _ts(3), "read_bytes_per_s": 2.1e9,
         "await_ms": 0.4, "util_pct": 35.0, "kind": "local-nvme", "capacity_bytes": 3840755982336},
        {"hostname": "gpu-zz", "device": "sda", "ts": _ts(3), "util_pct": 1.0},
        {"hostname": "gpu-a1", "device": "nvme0n1", "ts": _ts(2), "util_pct": 140.0},
    ]  # fmt: skip
    body = _post_ndjson(ingest, "/api/v1/ingest/storage-samples", lines).json()
    assert (body["accepted"], body["rejected"]) == (1, 2)
    assert [e["field"] for e in body["errors"]] == ["hostname", "util_pct"]
    device = StorageDevice.objects.get()
    assert (device.name, device.kind, device.capacity_bytes) == (
        "nvme0n1",
        "local-nvme",
        3840755982336,
    )
    assert StorageSample.objects.get().read_bytes_per_s == 2.1e9
