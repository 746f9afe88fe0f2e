"""Block devices and filesystems: throughput, IOPS, latency and utilisation, and an
optional active probe that qualifies a directory's storage for latents.

Rates are deltas of the kernel's per-device counters (``/proc/diskstats`` through
psutil) between two polls: ``await_ms`` is the time requests spent queued and served per
completed request, ``util_pct`` the share of wall time the device was busy.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from collectors.records import StorageSample

NETWORK_FILESYSTEMS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "cephfs",
    "lustre",
    "glusterfs",
    "gpfs",
    "beegfs",
    "9p",
}
# Partitions and virtual devices whose counters would double-count their parent disk.
_IGNORED_PREFIXES = ("loop", "ram", "zram", "dm-", "sr", "fd")


def storage_kind(device: str, fstype: str = "", *, sys_block: Path = Path("/sys/block")) -> str:
    """local-nvme, local-ssd, hdd or network, from the filesystem type and sysfs."""
    fstype = fstype.lower()
    if fstype in NETWORK_FILESYSTEMS or fstype.startswith("fuse"):
        return "network"
    name = Path(device).name
    if name.startswith("nvme"):
        return "local-nvme"
    disk = name.rstrip("0123456789") if not name.startswith("mmcblk") else name
    rotational = sys_block / disk / "queue" / "rotational"
    try:
        return "hdd" if rotational.read_text().strip() == "1" else "local-ssd"
    except OSError:
        return "local-ssd"


@dataclass(frozen=True)
class Mount:
    device: str
    mount_point: str
    filesystem: str
    kind: str
    capacity_bytes: int | None


def mounts(
    *, partitions: Callable[..., Any] | None = None, usage: Callable[[str], Any] | None = None
) -> list[Mount]:
    import psutil

    partitions = partitions or psutil.disk_partitions
    usage = usage or psutil.disk_usage
    out = []
    for part in partitions(all=False):
        try:
            capacity = int(usage(part.mountpoint).total)
        except OSError:
            capacity = None
        out.append(
            Mount(
                part.device,
                part.mountpoint,
                part.fstype,
                storage_kind(part.device, part.fstype),
                capacity,
            )
        )
    return out


@dataclass(frozen=True)
class StorageDeviceInfo:
    """A block device as FrameOps registers it: named as its samples name it (the disk,
    e.g. ``nvme0n1``, not a partition), with its first mounted filesystem."""

    name: str
    kind: str
    capacity_bytes: int | None
    filesystem: str = ""
    mount_point: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "capacity_bytes": self.capacity_bytes,
            "filesystem": self.filesystem,
            "mount_point": self.mount_point,
        }


def disk_of(device: str) -> str:
    """The disk a partition lives on: /dev/nvme0n1p2 -> nvme0n1, /dev/sda1 -> sda."""
    name = Path(device).name
    if name.startswith(("nvme", "mmcblk")) and "p" in name[4:]:
        head, _, tail = name.rpartition("p")
        return head if tail.isdigit() else name
    return name.rstrip("0123456789") or name


def storage_devices(
    *, found: list[Mount] | None = None, sys_block: Path = Path("/sys/block")
) -> list[StorageDeviceInfo]:
    """Local disks with a mounted filesystem, and network filesystems (named by their
    mount point's device), with capacity from sysfs (the whole disk) or the filesystem."""
    out: dict[str, StorageDeviceInfo] = {}
    for mount in found if found is not None else mounts():
        if mount.kind == "network":
            name = mount.device
        else:
            name = disk_of(mount.device)
            if name.startswith(_IGNORED_PREFIXES) or not mount.device.startswith("/dev/"):
                continue
        if name in out:
            continue
        capacity = mount.capacity_bytes
        with contextlib.suppress(OSError, ValueError):
            capacity = int((sys_block / name / "size").read_text()) * 512
        out[name] = StorageDeviceInfo(
            name, mount.kind, capacity, mount.filesystem, mount.mount_point
        )
    return sorted(out.values(), key=lambda d: d.name)


class StorageSource:
    def __init__(
        self,
        *,
        hostname: str | None = None,
        counters: Callable[[], Mapping[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sys_block: Path = Path("/sys/block"),
    ) -> None:
        if counters is None:
            import psutil

            def counters() -> Mapping[str, Any]:
                return psutil.disk_io_counters(perdisk=True) or {}

        self.hostname = hostname or socket.gethostname()
        self._counters = counters
        self._clock = clock
        self._sys_block = sys_block
        self._last: tuple[float, Mapping[str, Any]] | None = None

    def sample(self, *, now: datetime | None = None) -> list[StorageSample]:
        """Rates since the previous call; the first call only primes the counters."""
        now = now or datetime.now(UTC)
        taken_at, current = self._clock(), dict(self._counters())
        previous, self._last = self._last, (taken_at, current)
        if previous is None:
            return []
        elapsed_s = taken_at - previous[0]
        if elapsed_s <= 0:
            return []
        out = []
        for name, c in current.items():
            p = previous[1].get(name)
            if p is None or name.startswith(_IGNORED_PREFIXES):
                continue
            reads, writes = c.read_count - p.read_count, c.write_count - p.write_count
            if reads < 0 or writes < 0:
                continue  # counters wrapped or the device was re-attached
            busy_ms = getattr(c, "busy_time", 0) - getattr(p, "busy_time", 0)
            wait_ms = (c.read_time - p.read_time) + (c.write_time - p.write_time)
            out.append(
                StorageSample(
                    hostname=self.hostname,
                    device=name,
                    ts=now,
                    read_bytes_per_s=max(c.read_bytes - p.read_bytes, 0) / elapsed_s,
                    write_bytes_per_s=max(c.write_bytes - p.write_bytes, 0) / elapsed_s,
                    read_iops=reads / elapsed_s,
                    write_iops=writes / elapsed_s,
                    await_ms=max(wait_ms, 0) / (reads + writes) if reads + writes else 0.0,
                    util_pct=min(max(busy_ms, 0) / (elapsed_s * 1000) * 100, 100.0),
                    kind=storage_kind(name, sys_block=self._sys_block),
                )
            )
        return out


@dataclass(frozen=True)
class ProbeResult:
    directory: str
    size_mib: int
    write_mb_per_s: float
    read_mb_per_s: float
    write_p99_ms: float
    read_p99_ms: float


def _p99(values: list[float]) -> float:
    return (
        statistics.quantiles(values, n=100)[98]
        if len(values) >= 2
        else (values[0] if values else 0.0)
    )


def probe(directory: str | Path, *, size_mib: int = 64, block_kib: int = 1024) -> ProbeResult:
    """Write ``size_mib`` in ``block_kib`` blocks with an fsync after each, drop the file
    from the page cache, read it back; MB/s and p99 per-block latency for both. This is
    the access pattern of latent checkpoints between diffusion steps."""
    if size_mib <= 0 or block_kib <= 0:
        raise ValueError("size_mib and block_kib must be positive")
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory} is not a directory")
    block = os.urandom(block_kib * 1024)
    blocks = max(size_mib * 1024 // block_kib, 1)
    path = directory / f".frameops-probe-{os.getpid()}"
    write_ms: list[float] = []
    read_ms: list[float] = []
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        started = time.perf_counter()
        for _ in range(blocks):
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fsync(fd)
            write_ms.append((time.perf_counter() - t0) * 1000)
        write_s = time.perf_counter() - started
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
        fd = os.open(path, os.O_RDONLY)
        started = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            chunk = os.read(fd, len(block))
            if not chunk:
                break
            read_ms.append((time.perf_counter() - t0) * 1000)
        read_s = time.perf_counter() - started
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    total_mb = blocks * len(block) / 1e6
    return ProbeResult(
        directory=str(directory),
        size_mib=size_mib,
        write_mb_per_s=total_mb / write_s,
        read_mb_per_s=total_mb / read_s if read_s > 0 else 0.0,
        write_p99_ms=_p99(write_ms),
        read_p99_ms=_p99(read_ms),
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m collectors.storage``: what the agent would report for this host."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m collectors.storage",
        description="Show this host's storage devices and one reading of each, as the agent "
        "reports them; --probe DIR also measures a directory with the active probe.",
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between the two counter reads"
    )
    parser.add_argument("--probe", metavar="DIR", help="run the write/read probe in DIR")
    parser.add_argument("--probe-mib", type=int, default=64, help="probe file size (MiB)")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")
    devices = storage_devices()
    print(f"{len(devices)} storage device(s):", file=sys.stderr)
    for d in devices:
        size = f"{d.capacity_bytes / 1e9:,.0f} GB" if d.capacity_bytes else "size unknown"
        where = f"{d.filesystem} on {d.mount_point}" if d.mount_point else "not mounted"
        print(f"  {d.name}: {d.kind}, {size}, {where}", file=sys.stderr)
    source = StorageSource()
    source.sample()
    time.sleep(args.interval)
    readings = source.sample()
    for reading in readings:
        print(json.dumps(reading.as_json()))
    print(f"{len(readings)} reading(s) over {args.interval:g} s", file=sys.stderr)
    if args.probe:
        try:
            result = probe(args.probe, size_mib=args.probe_mib)
        except (ValueError, OSError) as exc:
            print(f"probe: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(result.__dict__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
