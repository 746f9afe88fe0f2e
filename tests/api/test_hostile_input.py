"""Every bad input is a 4xx that names its field, and loses none of the good lines sent
with it; nothing about another team leaks."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

import pytest

from finops.fleet.models import Gpu, Node, Site
from finops.jobs.models import RenderJob
from finops.telemetry.models import GpuSample, StorageSample

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(microsecond=0)


def _ts(seconds_ago: int) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def ingest(api, make_key, team_a, team_b):  # type: ignore[no-untyped-def]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('ingest:write', 'read')}")
    node = {"hostname": "gpu-a1", "site": "lab", "provider": "on-prem",
            "gpus": [{"uuid": "GPU-0", "index": 0, "model": "NVIDIA H100 80GB HBM3"}]}  # fmt: skip
    assert api.post("/api/v1/nodes", node, format="json").status_code == 201
    return api


def _post(api, path: str, lines: list[object], **extra):  # type: ignore[no-untyped-def]
    body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return api.generic("POST", path, body, content_type="application/x-ndjson", **extra)


def _good(i: int) -> dict[str, object]:
    return {"gpu_uuid": "GPU-0", "ts": _ts(100 + i), "sm_util_pct": 50.0}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"sm_clock_mhz": 4_294_968_796}, "sm_clock_mhz"),
        ({"sm_clock_mhz": 2**31}, "sm_clock_mhz"),
        ({"mem_used_bytes": 2**63}, "mem_used_bytes"),
        ({"power_w": 10**400}, "power_w"),
        ({"gpu_uuid": "GPU-\u00000"}, "gpu_uuid"),
        ({"ts": "9999-12-31T23:59:59-23:59"}, "ts"),
        ({"ts": "0001-01-01T00:00:00+01:00"}, "ts"),
    ],
)
def test_a_bad_sample_line_is_rejected_on_its_own(ingest, bad, field):
    lines = [_good(1), {**_good(2), **bad}, _good(3)]
    response = _post(ingest, "/api/v1/ingest/gpu-samples", lines)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 1)
    assert body["errors"][0]["line"] == 2
    assert body["errors"][0]["field"] == field
    assert GpuSample.objects.count() == 2
    assert GpuSample.objects.filter(sm_clock_mhz__isnull=False).count() == 0


def test_deep_nesting_and_huge_numbers_are_bad_lines_not_errors(ingest):
    deep = (
        '{"gpu_uuid": "GPU-0", "ts": "' + _ts(5) + '", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    digits = '{"gpu_uuid": "GPU-0", "ts": "' + _ts(6) + '", "power_w": ' + "9" * 5000 + "}"
    response = _post(ingest, "/api/v1/ingest/gpu-samples", [_good(1), deep, digits, _good(2)])
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert "deeper than 32 levels (MAX_JSON_DEPTH)" in body["errors"][0]["message"]
    array = "[" * 100_000 + "]" * 100_000
    whole = ingest.generic(
        "POST", "/api/v1/ingest/gpu-samples", array, content_type="application/json"
    )
    assert whole.status_code == 400
    assert "deeper than 32 levels (MAX_JSON_DEPTH)" in whole.json()["message"]
    assert GpuSample.objects.count() == 2


def test_nul_in_a_storage_sample_is_rejected_on_its_own(ingest):
    good = {"hostname": "gpu-a1", "device": "nvme0n1", "ts": _ts(10), "util_pct": 5.0}
    lines = [good, {**good, "device": "nvme\u00001", "ts": _ts(11)},
             {**good, "hostname": "gpu\u0000a1", "ts": _ts(12)}]  # fmt: skip
    body = _post(ingest, "/api/v1/ingest/storage-samples", lines).json()
    assert (body["accepted"], body["rejected"]) == (1, 2)
    assert [e["field"] for e in body["errors"]] == ["device", "hostname"]
    assert StorageSample.objects.count() == 1


def test_every_gzip_member_is_read(ingest):
    first = gzip.compress(json.dumps(_good(1)).encode() + b"\n")
    second = gzip.compress(json.dumps(_good(2)).encode() + b"\n")
    response = ingest.generic("POST", "/api/v1/ingest/gpu-samples", first + second,
                              content_type="application/x-ndjson", HTTP_CONTENT_ENCODING="gzip")  # fmt: skip
    assert response.json()["accepted"] == 2
    assert GpuSample.objects.count() == 2


def test_bytes_after_the_gzip_stream_are_refused(ingest):
    body = gzip.compress(json.dumps(_good(1)).encode()) + b"trailing junk"
    response = ingest.generic("POST", "/api/v1/ingest/gpu-samples", body,
                              content_type="application/x-ndjson", HTTP_CONTENT_ENCODING="gzip")  # fmt: skip
    assert response.status_code == 400
    assert "after the gzip stream" in response.json()["message"]
    assert not GpuSample.objects.exists()


def _event(**fields: object) -> dict[str, object]:
    return {"source": "farm", "external_id": "j1", "team": "studio-a", "status": "succeeded",
            "started_at": _ts(600), "finished_at": _ts(60), "gpus": [], **fields}  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "field", "text"),
    [
        ({"frames": 2**40}, "frames", "less than or equal to"),
        ({"peak_vram_bytes": 2**70}, "peak_vram_bytes", "less than or equal to"),
        ({"started_at": "2026-11-02T10:00:00"}, "started_at", "no time zone"),
        ({"finished_at": "9999-12-31T00:00:00Z"}, "finished_at", "must lie between"),
        ({"fps": "1e400"}, "fps", "finite"),  # sent as the bare number 1e400
        (
            {"gpus": [{"uuid": "GPU-0", "start": "9999-01-01T00:00:00Z"}]},
            "gpus",
            "must lie between",
        ),
    ],
)
def test_bad_job_events_are_400_naming_the_field(ingest, fields, field, text):
    body = json.dumps(_event(**fields)).replace('"1e400"', "1e400")
    response = ingest.generic("POST", "/api/v1/jobs", body, content_type="application/json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body["extra"]["fields"]
    assert text in json.dumps(body["extra"]["fields"][field])
    assert not RenderJob.objects.exists()


def test_another_teams_external_id_is_refused_without_naming_the_owner(
    api, make_key, team_a, team_b
):
    node = Node.objects.create(site=Site.objects.create(slug="s", provider="other"), hostname="n")
    Gpu.objects.create(node=node, uuid="GPU-0", index=0)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('ingest:write', team=team_b)}")
    assert api.post("/api/v1/jobs", _event(team="studio-b"), format="json").status_code == 201
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('ingest:write', team=team_a)}")
    response = api.post("/api/v1/jobs", _event(), format="json")
    assert response.status_code == 400
    assert "studio-b" not in response.content.decode()
    assert "another team" in response.content.decode()


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"since": ""}, "since"),
        ({"until": ""}, "until"),
        ({"since": "garbage"}, "since"),
        ({"since": "2026-11-02T10:00:00"}, "since"),
        ({"usable": "maybe"}, "usable"),
        ({"status": "exploded"}, "status"),
    ],
)
def test_jobs_list_parameters_are_400_naming_them(ingest, params, parameter):
    response = ingest.get("/api/v1/jobs", params)
    assert response.status_code == 400, response.content
    assert list(response.json()["extra"]["fields"]) == [parameter]


@pytest.mark.parametrize(
    "params",
    [
        {"window": "1000000d"},
        {"window": "8516066744h"},
        {"window": "9999-12-01T00:00:00Z,9999-12-31T00:00:00Z", "step": "1d"},
        {"window": "0001-01-01T00:00:00+01:00,0001-01-02T00:00:00Z"},
        {"window": "2026-11-02T00:00:00Z,2026-11-03T00:00:00"},
    ],
)
def test_allocation_windows_out_of_bounds_are_400(api, make_key, params):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('billing:read')}")
    response = api.get("/api/v1/allocation", params)
    assert response.status_code == 400, response.content
    assert list(response.json()["extra"]["fields"]) == ["window"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"period": "9999-12"}, "period"), ({"period": "0001-01"}, "period"),
     ({"period": "2026-13"}, "period"), ({"period": "2026-11", "format": "xml"}, "format")],
)  # fmt: skip
def test_invoice_period_out_of_bounds_is_400(api, make_key, team_a, params, parameter):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('billing:read')}")
    response = api.get("/api/v1/teams/studio-a/invoice", params)
    assert response.status_code == 400, response.content
    assert list(response.json()["extra"]["fields"]) == [parameter]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({"start": "2026-11-01T00:00:00Z", "end": "9999-01-01T00:00:00Z"}, "end"),
     ({"start": "yesterday", "end": "2026-11-02T00:00:00Z"}, "start"),
     ({"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z", "format": "xml"}, "format")],
)  # fmt: skip
def test_focus_bounds_are_400_naming_the_parameter(api, make_key, params, parameter):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('billing:read')}")
    response = api.get("/api/v1/export/focus", params)
    assert response.status_code == 400, response.content
    assert list(response.json()["extra"]["fields"]) == [parameter]


def test_a_vanishing_reading_is_stored_as_zero_and_rolls_up(ingest):
    # 5.8e-177 B/s times a sample's seconds underflows a PostgreSQL double, which refuses
    # it: one agent's noise would stop the rollup of every GPU in that minute.
    from finops.telemetry.rollups import rollups_recompute

    line = {"gpu_uuid": "GPU-0", "ts": _ts(120), "pcie_tx_bytes_per_s": 5.844e-177,
            "sm_util_pct": 1e-40}  # fmt: skip
    assert _post(ingest, "/api/v1/ingest/gpu-samples", [line, _good(1)]).json()["accepted"] == 2
    sample = GpuSample.objects.get(ts=NOW - timedelta(seconds=120))
    assert (sample.pcie_tx_bytes_per_s, sample.sm_util_pct) == (0.0, 0.0)
    rollups_recompute(start=NOW - timedelta(minutes=5), end=NOW)
