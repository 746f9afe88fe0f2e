from __future__ import annotations

import json
from collections import namedtuple
from datetime import UTC, datetime

import pytest

from collectors.storage import StorageSource, mounts, probe, storage_kind

Counters = namedtuple(
    "Counters", "read_count write_count read_bytes write_bytes read_time write_time busy_time"
)
AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_rates_from_counter_deltas(tmp_path):
    (tmp_path / "sda" / "queue").mkdir(parents=True)
    (tmp_path / "sda" / "queue" / "rotational").write_text("1\n")
    readings = iter([
        {"nvme0n1": Counters(100, 50, 10**9, 10**8, 400, 100, 1000), "sda": Counters(0, 0, 0, 0, 0, 0, 0),
         "loop0": Counters(0, 0, 0, 0, 0, 0, 0)},
        {"nvme0n1": Counters(300, 150, 3 * 10**9, 3 * 10**8, 1400, 600, 1500), "sda": Counters(10, 0, 4096, 0, 250, 0, 2000),
         "loop0": Counters(5, 0, 0, 0, 0, 0, 0)},
    ])  # fmt: skip
    clock = iter([10.0, 12.0])
    source = StorageSource(
        hostname="gpu-a1",
        counters=lambda: next(readings),
        clock=lambda: next(clock),
        sys_block=tmp_path,
    )
    assert source.sample(now=AT) == []  # primes the counters
    samples = {s.device: s for s in source.sample(now=AT)}
    assert set(samples) == {"nvme0n1", "sda"}  # loop devices are left out
    nvme = samples["nvme0n1"]
    assert nvme.read_bytes_per_s == 10**9
    assert nvme.write_bytes_per_s == 10**8
    assert (nvme.read_iops, nvme.write_iops) == (100, 50)
    assert nvme.await_ms == pytest.approx((1000 + 500) / 300)
    assert nvme.util_pct == pytest.approx(25.0)
    assert nvme.kind == "local-nvme"
    assert samples["sda"].kind == "hdd"
    assert samples["sda"].util_pct == 100.0  # busy time is capped at wall time


@pytest.mark.parametrize(
    ("device", "fstype", "kind"),
    [("server:/export", "nfs4", "network"), ("//nas/share", "cifs", "network"), ("s3fs", "fuse.s3fs", "network"),
     ("/dev/nvme0n1p1", "ext4", "local-nvme"), ("/dev/vda1", "ext4", "local-ssd")],
)  # fmt: skip
def test_filesystem_kinds(device, fstype, kind, tmp_path):
    assert storage_kind(device, fstype, sys_block=tmp_path) == kind


def test_mounts_report_capacity():
    Part = namedtuple("Part", "device mountpoint fstype opts")
    Usage = namedtuple("Usage", "total used free percent")
    found = mounts(
        partitions=lambda all: [Part("fileserver:/latents", "/mnt/latents", "nfs4", "rw")],
        usage=lambda path: Usage(10**12, 0, 10**12, 0.0),
    )
    assert [(m.mount_point, m.kind, m.capacity_bytes) for m in found] == [
        ("/mnt/latents", "network", 10**12)
    ]


def test_active_probe_writes_and_reads_a_scratch_directory(tmp_path):
    result = probe(tmp_path, size_mib=4, block_kib=256)
    assert result.write_mb_per_s > 0
    assert result.read_mb_per_s > 0
    assert result.write_p99_ms >= 0
    assert list(tmp_path.iterdir()) == []  # cleans up after itself
    with pytest.raises(ValueError, match="not a directory"):
        probe(tmp_path / "missing")


def test_devices_are_disks_with_their_filesystem_and_capacity(tmp_path):
    from collectors.storage import Mount, storage_devices

    (tmp_path / "nvme0n1").mkdir()
    (tmp_path / "nvme0n1" / "size").write_text("7814037168\n")  # 512-byte sectors: 4 TB
    found = [
        Mount("/dev/nvme0n1p2", "/scratch", "xfs", "local-nvme", 3_900_000_000_000),
        Mount("/dev/nvme0n1p1", "/boot", "vfat", "local-nvme", 500_000_000),
        Mount("/dev/sda1", "/", "ext4", "local-ssd", 250_000_000_000),
        Mount("server:/latents", "/mnt/latents", "nfs4", "network", 10**14),
        Mount("/dev/loop3", "/snap/x", "squashfs", "local-ssd", 10**8),
    ]
    devices = {d.name: d for d in storage_devices(found=found, sys_block=tmp_path)}
    assert set(devices) == {"nvme0n1", "sda", "server:/latents"}
    nvme = devices["nvme0n1"]
    assert (nvme.kind, nvme.capacity_bytes, nvme.filesystem, nvme.mount_point) == (
        "local-nvme", 7814037168 * 512, "xfs", "/scratch",
    )  # fmt: skip
    assert devices["sda"].capacity_bytes == 250_000_000_000  # no sysfs entry: the filesystem's
    assert devices["server:/latents"].kind == "network"


def test_storage_command_shows_devices_and_a_reading(capsys):
    from collectors.storage import main

    assert main(["--interval", "0.2"]) == 0
    out, err = capsys.readouterr()
    assert "storage device(s):" in err
    assert "reading(s) over 0.2 s" in err
    for line in out.splitlines():
        assert {"device", "read_bytes_per_s", "await_ms", "util_pct"} <= set(json.loads(line))


def test_storage_command_refuses_a_bad_probe_directory(capsys, tmp_path):
    from collectors.storage import main

    assert main(["--interval", "0.1", "--probe", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
