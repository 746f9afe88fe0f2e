from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.dcgm import main, parse_exposition, samples_from_range_series

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dcgm_exporter_h100_mig.txt"
AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
GPU0 = "GPU-5fd4aa10-1111-2222-3333-444455556666"
GPU1 = "GPU-7b3f1a2c-1111-2222-3333-444455556666"


def test_multi_gpu_scrape_with_mig_instances():
    result = parse_exposition(FIXTURE.read_text(), scraped_at=AT)
    by_key = {s.gpu_uuid: s for s in result.samples}
    assert set(by_key) == {GPU0, GPU1, f"{GPU1}/1", f"{GPU1}/2"}
    gpu0 = by_key[GPU0]
    assert gpu0.ts == AT
    assert gpu0.sm_util_pct == 87.0
    assert gpu0.mem_used_bytes == 58368 * 2**20
    assert gpu0.mem_total_bytes == (58368 + 22870 + 321) * 2**20
    assert gpu0.power_w == 612.4
    assert gpu0.temp_c == 71.0
    assert gpu0.sm_clock_mhz == 1755
    assert gpu0.energy_mj == 912345678
    assert gpu0.pcie_tx_bytes_per_s == 1.2e9
    # MIG instances share the parent's UUID; each is its own device, busy from GR activity.
    assert by_key[f"{GPU1}/1"].sm_util_pct == 75.0
    assert by_key[f"{GPU1}/2"].sm_util_pct == 12.5
    mig = result.devices[f"{GPU1}/1"]
    assert (mig.uuid, mig.mig_instance_id, mig.mig_profile, mig.hostname) == (
        GPU1,
        1,
        "3g.40gb",
        "gpu-a1",
    )
    assert result.devices[GPU0].model == "NVIDIA H100 80GB HBM3"
    # The non-numeric line is skipped and counted, the rest of the scrape survives.
    assert result.skipped_lines == 1
    assert "not-a-number" in result.problems[0]


def test_scrape_without_help_lines_lowercase_hostname_and_vgpu():
    text = (
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-v",device="nvidia0",modelName="GRID A100D-40C",hostname="vm-1"} 33\n'
        'DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-v",device="nvidia0",modelName="GRID A100D-40C",hostname="vm-1"} 1024\n'
    )
    result = parse_exposition(text, scraped_at=AT)
    (sample,) = result.samples
    assert sample.sm_util_pct == 33.0
    assert sample.power_w is None and sample.temp_c is None
    assert result.devices["GPU-v"].hostname == "vm-1"


def test_malformed_and_out_of_range_lines_are_counted_not_fatal():
    text = (
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a"} 50\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-b" 50\n'  # unterminated labels
        'DCGM_FI_DEV_GPU_UTIL{gpu="2"} 50\n'  # no UUID
        'DCGM_FI_DEV_GPU_UTIL{gpu="3",UUID="GPU-d"} NaN\n'
        'DCGM_FI_DEV_POWER_USAGE{gpu="4",UUID="GPU-e"} -5\n'  # negative power: device rejected
    )
    result = parse_exposition(text, scraped_at=AT)
    assert [s.gpu_uuid for s in result.samples] == ["GPU-a"]
    assert result.skipped_lines == 4
    assert any("power_w" in p for p in result.problems)


def test_exposition_timestamps_are_used():
    text = 'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a"} 50 1795428000000\n'
    (sample,) = parse_exposition(text, scraped_at=datetime(2026, 11, 24, tzinfo=UTC)).samples
    assert sample.ts == datetime.fromtimestamp(1795428000, tz=UTC)


def test_violation_counters_become_exactly_the_throttled_time():
    # 15 s steps; the power counter grows 7.5 s in the first step, the thermal one 15 s:
    # the first step splits at 7.5 s (both bits, then thermal only); the last step has no
    # next counter value, so its throttle time is unknown (no bits).
    labels = {"UUID": "GPU-a", "gpu": "0", "Hostname": "h", "modelName": "NVIDIA L4"}
    t0 = 1795428000
    series = [
        {
            "metric": {"__name__": "DCGM_FI_DEV_GPU_UTIL", **labels},
            "values": [[t0, "90"], [t0 + 15, "91"]],
        },
        {
            "metric": {"__name__": "DCGM_FI_DEV_FB_USED", **labels},
            "values": [[t0, "100"], [t0 + 15, "oops"]],
        },
    ]
    counters = [
        {"metric": {"__name__": "DCGM_FI_DEV_POWER_VIOLATION", **labels},
         "values": [[t0, "1000000"], [t0 + 15, "8500000"]]},
        {"metric": {"__name__": "DCGM_FI_DEV_THERMAL_VIOLATION", **labels},
         "values": [[t0, "0"], [t0 + 15, "15000000"]]},
    ]  # fmt: skip
    result = samples_from_range_series(
        series, counters, step_s=15, now=datetime(2026, 11, 24, tzinfo=UTC)
    )
    assert [
        (s.ts.timestamp() - t0, s.sm_util_pct, s.clocks_event_reasons) for s in result.samples
    ] == [(0.0, 90.0, 0x24), (7.5, 90.0, 0x20), (15.0, 91.0, None)]
    assert result.samples[0].mem_used_bytes == 100 * 2**20
    assert result.skipped_lines == 1


def test_cli_prints_ndjson(capsys):
    assert main(["scrape", str(FIXTURE)]) == 0
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["gpu_uuid"] for r in rows} == {GPU0, GPU1, f"{GPU1}/1", f"{GPU1}/2"}
    assert {r["hostname"] for r in rows} == {"gpu-a1"}  # the exporter's Hostname label
    assert "4 samples from 4 devices; 1 lines skipped" in err


def result_host() -> str:
    return next(
        iter(parse_exposition(FIXTURE.read_text(), scraped_at=AT).devices.values())
    ).hostname


def test_non_numbers_are_counted_in_families_frameops_does_not_read():
    """An A800 scrape: dcgm-exporter failed to convert one field it exports."""
    text = (
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-a",modelName="NVIDIA A800-SXM4-80GB"} 50\n'
        'DCGM_FI_DEV_VBIOS_VERSION{gpu="0",UUID="GPU-a"} ERROR - FAILED TO CONVERT TO STRING\n'
        "go_goroutines 42\n"
    )
    result = parse_exposition(text, scraped_at=AT)
    assert [s.sm_util_pct for s in result.samples] == [50.0]
    assert result.skipped_lines == 1
    assert "FAILED TO CONVERT" in result.problems[0]


def test_cli_reports_unreadable_source(capsys):
    assert main(["scrape", "/nonexistent/metrics.txt"]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("line", ["", "# comment", "go_goroutines 42"])
def test_foreign_and_blank_lines_are_ignored(line):
    assert parse_exposition(line, scraped_at=AT).skipped_lines == 0
