"""NVIDIA DCGM telemetry: dcgm-exporter's text exposition and Prometheus range queries.

Two ways in, one normalised output (``collectors.records.GpuSample``):

* ``parse_exposition(text)`` reads what dcgm-exporter serves on ``:9400/metrics``. It
  accepts scrapes with or without HELP/TYPE lines, the ``Hostname`` or ``hostname``
  label, vGPUs without power or temperature, and MIG instances, which share their
  parent's UUID and are told apart by ``GPU_I_ID``/``GPU_I_PROFILE``: each becomes its
  own device ``<UUID>/<GPU_I_ID>``. A line that cannot be read is skipped and counted,
  never fatal to the scrape.
* ``query_prometheus(url, start, end, step_s)`` asks Prometheus (which scrapes the
  exporters) for the same counters over a window with prometheus-api-client, including
  the throttle ``*_VIOLATION`` counters, whose increase per step is throttled time.

``python -m collectors.dcgm scrape URL_OR_FILE`` prints the normalised samples as NDJSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from collectors.records import GpuSample, RecordError, gpu_sample_from_mapping

MIB = 2**20

# dcgm-exporter metric -> (GpuSample field, scale to the field's unit)
GAUGES: dict[str, tuple[str, float]] = {
    "DCGM_FI_DEV_GPU_UTIL": ("sm_util_pct", 1.0),
    "DCGM_FI_DEV_FB_USED": ("mem_used_bytes", MIB),
    "DCGM_FI_DEV_POWER_USAGE": ("power_w", 1.0),
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": ("power_limit_w", 1.0),
    "DCGM_FI_DEV_GPU_TEMP": ("temp_c", 1.0),
    "DCGM_FI_DEV_SM_CLOCK": ("sm_clock_mhz", 1.0),
    "DCGM_FI_DEV_MAX_SM_CLOCK": ("sm_clock_max_mhz", 1.0),
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": ("clocks_event_reasons", 1.0),
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": ("clocks_event_reasons", 1.0),
    "DCGM_FI_PROF_PCIE_TX_BYTES": ("pcie_tx_bytes_per_s", 1.0),
    "DCGM_FI_PROF_PCIE_RX_BYTES": ("pcie_rx_bytes_per_s", 1.0),
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": ("energy_mj", 1.0),
}
# Memory total is the sum of these (MiB); FB_TOTAL wins when the exporter sends it.
MEMORY_PARTS = ("DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_FB_FREE", "DCGM_FI_DEV_FB_RESERVED")
FB_TOTAL = "DCGM_FI_DEV_FB_TOTAL"
# Graphics-engine activity (0..1): utilisation for MIG instances, which have no GPU_UTIL.
GR_ENGINE_ACTIVE = "DCGM_FI_PROF_GR_ENGINE_ACTIVE"
# Throttle-duration counters (microseconds) -> the NVML clocks-event reason they stand for.
VIOLATIONS: dict[str, int] = {
    "DCGM_FI_DEV_POWER_VIOLATION": 0x4,  # software power cap
    "DCGM_FI_DEV_THERMAL_VIOLATION": 0x20,  # software thermal slowdown
    "DCGM_FI_DEV_SYNC_BOOST_VIOLATION": 0x10,
    "DCGM_FI_DEV_BOARD_LIMIT_VIOLATION": 0x80,  # board power limit: the power brake
    "DCGM_FI_DEV_LOW_UTIL_VIOLATION": 0x1,  # idle
    "DCGM_FI_DEV_RELIABILITY_VIOLATION": 0x8,  # hardware slowdown
}
KNOWN = {*GAUGES, *MEMORY_PARTS, FB_TOTAL, GR_ENGINE_ACTIVE}

_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?\s*')


@dataclass(frozen=True)
class Device:
    """What the exporter's labels say about a device, for registering it."""

    key: str  # UUID, or UUID/GPU_I_ID for a MIG instance
    uuid: str
    index: int | None
    model: str
    hostname: str
    pci_bus_id: str = ""
    mig_instance_id: int | None = None
    mig_profile: str = ""


@dataclass(frozen=True)
class PodRef:
    """The Kubernetes pod dcgm-exporter says holds a device (``--kubernetes``: labels
    ``namespace``, ``pod``, ``container``)."""

    namespace: str
    pod: str
    container: str = ""

    def as_json(self) -> dict[str, str]:
        return {"namespace": self.namespace, "pod": self.pod, "container": self.container}


def pod_from_labels(labels: Mapping[str, str]) -> PodRef | None:
    pod = labels.get("pod") or labels.get("exported_pod") or ""
    namespace = labels.get("namespace") or labels.get("exported_namespace") or ""
    if not pod or not namespace:
        return None
    container = labels.get("container") or labels.get("exported_container") or ""
    return PodRef(namespace, pod, container)


@dataclass
class ParseResult:
    samples: list[GpuSample] = field(default_factory=list)
    devices: dict[str, Device] = field(default_factory=dict)
    skipped_lines: int = 0
    problems: list[str] = field(default_factory=list)
    # Unix times at which a pod's series were present for a device: a time-sliced GPU has
    # one series per pod, a MIG instance its own device key.
    pods: dict[tuple[str, PodRef], set[float]] = field(default_factory=dict)

    def pod_seen(self, device_key: str, pod: PodRef | None, ts: float) -> None:
        if pod is not None:
            self.pods.setdefault((device_key, pod), set()).add(ts)

    def pods_of(self, device_key: str) -> list[PodRef]:
        return sorted(
            {p for (key, p) in self.pods if key == device_key}, key=lambda p: (p.namespace, p.pod)
        )

    def skip(self, line_number: int, reason: str) -> None:
        self.skipped_lines += 1
        if len(self.problems) < 50:
            self.problems.append(f"line {line_number}: {reason}")


def _labels(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _LABEL.match(text, position)
        if match is None:
            raise ValueError(f"unreadable labels at {text[position : position + 30]!r}")
        out[match.group(1)] = match.group(2).replace('\\"', '"').replace("\\\\", "\\")
        position = match.end()
    return out


def device_from_labels(labels: Mapping[str, str]) -> Device | None:
    uuid = labels.get("UUID") or labels.get("uuid")
    if not uuid:
        return None
    instance = labels.get("GPU_I_ID", "")
    gpu = labels.get("gpu", "")
    return Device(
        key=f"{uuid}/{instance}" if instance else uuid,
        uuid=uuid,
        index=int(gpu) if gpu.isdigit() else None,
        model=labels.get("modelName", ""),
        hostname=labels.get("Hostname") or labels.get("hostname") or "",
        pci_bus_id=labels.get("pci_bus_id", ""),
        mig_instance_id=int(instance) if instance.isdigit() else None,
        mig_profile=labels.get("GPU_I_PROFILE", ""),
    )


def values_to_sample(key: str, ts: datetime, values: Mapping[str, float]) -> dict[str, Any]:
    """The GpuSample mapping for one device's metric values at one time."""
    out: dict[str, Any] = {"gpu_uuid": key, "ts": ts}
    for metric, value in values.items():
        target = GAUGES.get(metric)
        if target is not None:
            name, scale = target
            scaled = value * scale
            # A value too large to scale stays a float: validation refuses it, naming it.
            whole = name in _INTEGER_FIELDS and math.isfinite(scaled)
            out[name] = int(scaled) if whole else scaled
    if "sm_util_pct" not in out and GR_ENGINE_ACTIVE in values:
        out["sm_util_pct"] = min(values[GR_ENGINE_ACTIVE] * 100.0, 100.0)
    if FB_TOTAL in values:
        out["mem_total_bytes"] = int(values[FB_TOTAL] * MIB)
    elif "DCGM_FI_DEV_FB_USED" in values and "DCGM_FI_DEV_FB_FREE" in values:
        out["mem_total_bytes"] = int(sum(values.get(p, 0.0) for p in MEMORY_PARTS) * MIB)
    return out


_INTEGER_FIELDS = {
    "mem_used_bytes", "sm_clock_mhz", "sm_clock_max_mhz", "clocks_event_reasons", "energy_mj",
}  # fmt: skip


def parse_exposition(text: str, *, scraped_at: datetime | None = None) -> ParseResult:
    """Samples, one per device, from one dcgm-exporter scrape."""
    scraped_at = scraped_at or datetime.now(UTC)
    result = ParseResult()
    per_device: dict[str, dict[str, float]] = {}
    stamps: dict[str, datetime] = {}
    pods: dict[str, set[PodRef | None]] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        brace = line.find("{")
        if brace == -1:
            name, _, rest = line.partition(" ")
            labels: dict[str, str] = {}
        else:
            name = line[:brace]
            close = line.rfind("}")
            if close < brace:
                result.skip(number, "unterminated label set")
                continue
            try:
                labels = _labels(line[brace + 1 : close])
            except ValueError as exc:
                result.skip(number, str(exc))
                continue
            rest = line[close + 1 :]
        parts = rest.split()
        if not parts:
            result.skip(number, f"{name} has no value")
            continue
        try:
            value = float(parts[0])
        except ValueError:
            # Counted for every family, read or not: an exporter that fails to convert one
            # field (dcgm-exporter writes "ERROR - FAILED TO CONVERT TO STRING") is worth
            # seeing in the count even when FrameOps has no use for that field.
            result.skip(number, f"{name} value {' '.join(parts)[:60]!r} is not a number")
            continue
        if name not in KNOWN:
            continue  # another exporter's metric, or one FrameOps does not use
        if not math.isfinite(value):
            result.skip(number, f"{name} value {parts[0]} is not finite")
            continue
        device = device_from_labels(labels)
        if device is None:
            result.skip(number, f"{name} has no UUID label")
            continue
        result.devices.setdefault(device.key, device)
        per_device.setdefault(device.key, {})[name] = value
        if len(parts) > 1:
            try:
                stamps[device.key] = datetime.fromtimestamp(int(parts[1]) / 1000, tz=UTC)
            except (ValueError, OverflowError, OSError):  # not a number, or beyond the calendar
                result.skip(number, f"{name} timestamp {parts[1]!r} is not a number")
        pods.setdefault(device.key, set()).add(pod_from_labels(labels))
    for key, values in per_device.items():
        for pod in pods.get(key, ()):
            result.pod_seen(key, pod, stamps.get(key, scraped_at).timestamp())
        mapping = values_to_sample(key, stamps.get(key, scraped_at), values)
        try:
            result.samples.append(gpu_sample_from_mapping(mapping, now=scraped_at))
        except RecordError as exc:
            result.skip(0, f"device {key}: {exc}")
    return result


# --- Prometheus ---------------------------------------------------------------------------


def query_prometheus(
    url: str, *, start: datetime, end: datetime, step_s: int, timeout_s: float = 30
) -> ParseResult:
    """Samples for every DCGM device Prometheus holds in [start, end], one per step.

    Throttle time comes from the ``*_VIOLATION`` counters (microseconds spent throttled):
    their increase from each step to the next is the throttled time of that step's sample,
    read one step past ``end`` so the last sample gets its own; where the exporter sends
    the reasons bitmask (``DCGM_FI_DEV_CLOCKS_EVENT_REASONS``), that is used instead.
    """
    from prometheus_api_client import PrometheusConnect

    prom = PrometheusConnect(url=url, disable_ssl=True, timeout=timeout_s)
    names = "|".join(sorted(KNOWN))
    series = prom.custom_query_range(
        f'{{__name__=~"{names}"}}', start_time=start, end_time=end, step=f"{step_s}s"
    )
    counters = prom.custom_query_range(
        f'{{__name__=~"{"|".join(sorted(VIOLATIONS))}"}}',
        start_time=start,
        end_time=end + timedelta(seconds=step_s),
        step=f"{step_s}s",
    )
    # Which steps each pod's series really had a sample in: a range query repeats the last
    # value for Prometheus' look-back (5 minutes) after a series ends, timestamp() does not.
    presence = prom.custom_query_range(
        f'timestamp({{__name__=~"{GAUGE_FOR_PRESENCE}",pod!=""}})',
        start_time=start,
        end_time=end,
        step=f"{step_s}s",
    )
    return samples_from_range_series(
        series, counters, step_s=step_s, now=end, pod_presence=presence
    )


def step_runs(stamps: set[float], step_s: float) -> list[tuple[float, float]]:
    """Consecutive steps as ``[first, last + step)`` intervals (a missing step ends one)."""
    out: list[tuple[float, float]] = []
    for ts in sorted(stamps):
        if out and ts - out[-1][1] <= step_s * 0.5:
            out[-1] = (out[-1][0], ts + step_s)
        else:
            out.append((ts, ts + step_s))
    return out


def query_pod_labels(
    url: str, *, at: datetime, timeout_s: float = 30
) -> dict[tuple[str, str], dict[str, str]]:
    """kube-state-metrics' ``kube_pod_labels`` at ``at``: each pod's labels (the series'
    ``label_<name>`` labels, as ``<name>``), by (namespace, pod)."""
    from prometheus_api_client import PrometheusConnect

    prom = PrometheusConnect(url=url, disable_ssl=True, timeout=timeout_s)
    out: dict[tuple[str, str], dict[str, str]] = {}
    for item in prom.custom_query("kube_pod_labels", params={"time": at.timestamp()}):
        labels = item.get("metric", {})
        key = (labels.get("namespace", ""), labels.get("pod", ""))
        out.setdefault(key, {}).update(
            {k.removeprefix("label_"): v for k, v in labels.items() if k.startswith("label_")}
        )
    return out


def _throttled_seconds(
    counters: Iterable[Mapping[str, Any]], step_s: float
) -> dict[tuple[str, float], dict[int, float]]:
    """Per (device, step start): seconds throttled for each reason bit in that step, from
    the counters' increase to the next step (a counter that went back restarted from 0)."""
    out: dict[tuple[str, float], dict[int, float]] = {}
    for item in counters:
        labels = item.get("metric", {})
        bit = VIOLATIONS.get(labels.get("__name__", ""))
        device = device_from_labels(labels)
        if bit is None or device is None:
            continue
        points = []
        for stamp, raw in item.get("values", []):
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                points.append((float(stamp), value))
        points.sort()
        for (t0, v0), (t1, v1) in itertools.pairwise(points):
            if abs((t1 - t0) - step_s) > 1e-6:
                continue  # a missing step: its throttle time is unknown
            increase = v1 - v0 if v1 >= v0 else v1
            seconds = min(max(increase / 1e6, 0.0), step_s)
            out.setdefault((device.key, t0), {})[bit] = seconds
    return out


def _split_by_throttle(
    mapping: dict[str, Any], throttled: dict[int, float], step_s: float
) -> list[dict[str, Any]]:
    """One step's sample as samples whose reason bits hold for exactly the throttled time:
    at the step's start every reason throttled at all, then the bits drop, longest last
    (where in the step the time fell is not known; its length is)."""
    ends = sorted({s for s in throttled.values() if 0 < s < step_s})
    out = [{**mapping, "clocks_event_reasons": _bits(throttled, 0.0)}]
    for offset in ends:
        out.append({
            **mapping, "ts": mapping["ts"] + timedelta(seconds=offset),
            "clocks_event_reasons": _bits(throttled, offset),
        })  # fmt: skip
    return out


def _bits(throttled: dict[int, float], at: float) -> int:
    bits = 0
    for bit, seconds in throttled.items():
        if seconds > at:
            bits |= bit
    return bits


def series_points(
    series: Iterable[Mapping[str, Any]],
    *,
    devices: dict[str, Device],
    problem: Callable[[str], None],
) -> Iterator[tuple[str, Device, PodRef | None, float, float]]:
    """(metric name, device, pod, unix time, value) of every numeric point of Prometheus
    ``query_range`` or range-selector results; each series' device is added to
    ``devices``; a series without a UUID and a value that is not a number are reported to
    ``problem`` and left out. Non-finite values are yielded: what they mean is the
    caller's."""
    for item in series:
        labels = item.get("metric", {})
        device = device_from_labels(labels)
        name = labels.get("__name__", "")
        if device is None:
            problem(f"series {name} has no UUID label")
            continue
        devices.setdefault(device.key, device)
        pod = pod_from_labels(labels)
        for stamp, raw in item.get("values", []):
            try:
                value = float(raw)
            except (TypeError, ValueError):
                problem(f"{name}@{stamp} value {raw!r} is not a number")
                continue
            yield name, device, pod, float(stamp), value


GAUGE_FOR_PRESENCE = "DCGM_FI_DEV_GPU_UTIL|DCGM_FI_PROF_GR_ENGINE_ACTIVE"


def samples_from_range_series(
    series: Iterable[Mapping[str, Any]],
    counters: Iterable[Mapping[str, Any]] = (),
    *,
    step_s: float = 15.0,
    now: datetime | None = None,
    pod_presence: Iterable[Mapping[str, Any]] | None = None,
) -> ParseResult:
    """Samples from Prometheus ``query_range`` results (``{"metric": labels, "values":
    [[unix_ts, "value"], ...]}``): gauges, and the ``*_VIOLATION`` counters for throttle
    time (see ``query_prometheus``)."""
    result = ParseResult()
    grid: dict[tuple[str, float], dict[str, float]] = {}
    points = series_points(series, devices=result.devices, problem=lambda r: result.skip(0, r))
    for name, device, pod, stamp, value in points:
        if math.isfinite(value):
            grid.setdefault((device.key, stamp), {})[name] = value
            if pod_presence is None:
                result.pod_seen(device.key, pod, stamp)
    for item in pod_presence or ():
        labels = item.get("metric", {})
        holder, held_by = device_from_labels(labels), pod_from_labels(labels)
        if holder is None or held_by is None:
            continue
        for when, raw in item.get("values", []):
            try:
                fresh = float(when) - float(raw) < step_s
            except (TypeError, ValueError):
                continue
            if fresh:
                result.pod_seen(holder.key, held_by, float(when))
    throttle = _throttled_seconds(counters, step_s)
    for key, values in grid.items():
        try:
            ts = datetime.fromtimestamp(key[1], tz=UTC)
        except (ValueError, OverflowError, OSError):
            result.skip(0, f"device {key[0]}: timestamp {key[1]} is beyond the calendar")
            continue
        mapping = values_to_sample(key[0], ts, values)
        pieces = [mapping]
        if key in throttle and "clocks_event_reasons" not in mapping:
            pieces = _split_by_throttle(mapping, throttle[key], step_s)
        for piece in pieces:
            try:
                result.samples.append(gpu_sample_from_mapping(piece, now=now))
            except RecordError as exc:
                result.skip(0, f"device {key[0]} at {key[1]:.0f}: {exc}")
                break
    result.samples.sort(key=lambda s: (s.gpu_uuid, s.ts))
    return result


# --- Command line -------------------------------------------------------------------------


def _read(source: str, timeout_s: float) -> str:
    if source.startswith(("http://", "https://")):
        with urllib.request.urlopen(source, timeout=timeout_s) as response:  # noqa: S310
            return str(response.read().decode("utf-8", errors="replace"))
    return Path(source).read_text()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m collectors.dcgm", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    scrape = sub.add_parser("scrape", help="print one scrape's normalised samples as NDJSON")
    scrape.add_argument("source", help="exporter URL (http://host:9400/metrics) or a saved file")
    scrape.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    try:
        text = _read(args.source, args.timeout)
    except OSError as exc:
        print(f"cannot read {args.source}: {exc}", file=sys.stderr)
        return 2
    result = parse_exposition(text)
    for sample in result.samples:
        device = result.devices.get(sample.gpu_uuid)
        hostname = device.hostname if device is not None else ""
        pods = [p.as_json() for p in result.pods_of(sample.gpu_uuid)]
        print(json.dumps({**sample.as_json(), "hostname": hostname, "pods": pods}))
    print(
        f"{len(result.samples)} samples from {len(result.devices)} devices; "
        f"{result.skipped_lines} lines skipped",
        file=sys.stderr,
    )
    for problem in result.problems:
        print(f"  {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
