"""Pull DCGM telemetry from Prometheus into FrameOps, resuming from a stored watermark.

Each run reads the completed steps after the watermark, stores them through the normal
ingest path (duplicates are counted, never stored twice) and moves the watermark in the
same transaction, so a crash or restart neither skips an interval nor reads it twice.
Devices Prometheus knows but FrameOps does not are registered from the exporter's labels
(``Hostname``, ``gpu``, ``modelName``; MIG instances under their parent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from collectors.dcgm import Device, ParseResult, query_prometheus, step_runs
from collectors.dcgm_minutes import (
    PREFIX,
    RULE_DELAY_S,
    SUFFIX,
    RecordedMinutes,
    minutes_from_recorded,
)
from collectors.rollups import MINUTE
from finops.fleet.models import Gpu, Node, Site
from finops.fleet.selectors import gpu_model_for_reported_name
from finops.telemetry.ingest import IngestResult, gpu_samples_store
from finops.telemetry.models import PodPresence, PullWatermark, SampleSource

PROMETHEUS_SITE = "prometheus"
log = logging.getLogger("frameops.dcgm")


def _aligned(ts: datetime, step_s: int) -> datetime:
    epoch = int(ts.timestamp())
    return datetime.fromtimestamp(epoch - epoch % step_s, tz=ts.tzinfo)


def _source(kind: str, url: str) -> str:
    """The watermark's name for a pull of ``kind`` from ``url`` (the column holds 64)."""
    return f"{kind}:{url}"[: PullWatermark._meta.get_field("source").max_length]


def _pull_start(source: str, *, now: datetime, step_s: int) -> tuple[datetime, dict | None]:
    """The first step after ``source``'s watermark (a first run starts
    ``DCGM_PULL_LOOKBACK_S`` back), never further back than ``DCGM_PULL_MAX_LOOKBACK_S``:
    what is older is returned as a gap, and logged, not read."""
    step = timedelta(seconds=step_s)
    watermark = PullWatermark.objects.filter(source=source).first()
    start = (
        watermark.until + step
        if watermark
        else _aligned(now - timedelta(seconds=settings.DCGM_PULL_LOOKBACK_S), step_s)
    )
    oldest = _aligned(now - timedelta(seconds=settings.DCGM_PULL_MAX_LOOKBACK_S), step_s)
    if start >= oldest:
        return start, None
    log.warning("DCGM pull %s: %s to %s is older than DCGM_PULL_MAX_LOOKBACK_S and is not read",
                source, start, oldest)  # fmt: skip
    return oldest, {"from": start, "to": oldest - step}


def dcgm_devices_register(devices: Iterable[Device]) -> int:
    """Create nodes and GPUs for devices that are not registered yet; returns how many."""
    devices = list(devices)
    known = set(
        Gpu.objects.filter(uuid__in=[d.key for d in devices]).values_list("uuid", flat=True)
    )
    created = 0
    # Parents before MIG instances.
    for device in sorted(devices, key=lambda d: d.mig_instance_id is not None):
        if device.key in known:
            continue
        hostname = device.hostname or "unassigned"
        site, _ = Site.objects.get_or_create(slug=PROMETHEUS_SITE, defaults={"provider": "other"})
        node, _ = Node.objects.get_or_create(hostname=hostname, defaults={"site": site})
        model = gpu_model_for_reported_name(reported_name=device.model) if device.model else None
        parent = None
        if device.mig_instance_id is not None:
            parent, _ = Gpu.objects.get_or_create(
                uuid=device.uuid,
                defaults={
                    "node": node,
                    "index": device.index or 0,
                    "model": model,
                    "reported_name": device.model,
                },
            )
        index = device.index
        if index is None or (
            parent is None and Gpu.objects.filter(node=node, index=index, mig_parent=None).exists()
        ):
            index = (
                Gpu.objects.filter(node=node)
                .order_by("-index")
                .values_list("index", flat=True)
                .first()
                or -1
            ) + 1
        Gpu.objects.create(
            uuid=device.key,
            node=node,
            index=index,
            model=model,
            reported_name=device.model,
            mig_parent=parent,
            mig_instance_id=device.mig_instance_id,
            mig_profile=device.mig_profile,
        )
        known.add(device.key)
        created += 1
    return created


def pod_presences_record(
    pods: dict[tuple[str, Any], set[float]], *, source: str, step_s: float, until: datetime
) -> int:
    """Store the pods a pull saw (device key and pod -> step timestamps) as runs of steps."""
    rows = [
        PodPresence(source=source, device_key=key, namespace=pod.namespace, pod=pod.pod,
                    container=pod.container, start=datetime.fromtimestamp(a, tz=UTC),
                    end=datetime.fromtimestamp(b, tz=UTC), step_s=step_s, until=until)
        for (key, pod), stamps in pods.items()
        for a, b in step_runs(stamps, step_s)
    ]  # fmt: skip
    PodPresence.objects.bulk_create(rows)
    return len(rows)


def dcgm_pull(
    *,
    url: str | None = None,
    now: datetime | None = None,
    step_s: int | None = None,
    query: Callable[..., ParseResult] = query_prometheus,
    mode: str | None = None,
) -> dict[str, object]:
    """Read the completed steps after the watermark, in chunks of at most
    ``DCGM_PULL_CHUNK_STEPS`` steps (each stored with its watermark in its own
    transaction, so a long catch-up keeps what it has read), never further back than
    ``DCGM_PULL_MAX_LOOKBACK_S``: older steps are reported as a gap, not read. The pods
    series are labelled with are recorded as ``PodPresence`` runs in the same transaction;
    the Kubernetes attribution turns them into jobs as its own step
    (``finops.jobs.kubernetes.pod_presences_attribute``). With ``DCGM_PULL_MODE=minutes``
    it reads recorded minutes instead (``dcgm_minutes_pull``)."""
    if (mode or settings.DCGM_PULL_MODE) == "minutes":
        return dcgm_minutes_pull(url=url, now=now)
    url = url or settings.PROMETHEUS_URL
    if not url:
        return {"skipped": "PROMETHEUS_URL is not set"}
    step_s = step_s or settings.DCGM_PULL_STEP_S
    now = now or timezone.now()
    source = _source("dcgm", url)
    start, gap = _pull_start(source, now=now, step_s=step_s)
    # Only steps Prometheus has certainly scraped: stop one step short of now.
    end = _aligned(now - timedelta(seconds=step_s), step_s)
    counts: dict[str, object] = {"from": start, "to": end, "samples": 0}
    if end < start:
        return counts
    if gap:
        counts["gap"] = gap
    totals = dict.fromkeys(
        ("samples", "accepted", "duplicate", "rejected", "skipped_points", "registered_gpus",
         "pod_runs"), 0,
    )  # fmt: skip
    chunk = timedelta(seconds=step_s * settings.DCGM_PULL_CHUNK_STEPS)
    chunks = 0
    cursor = start
    while cursor <= end:
        last = min(cursor + chunk - timedelta(seconds=step_s), end)
        parsed = query(url, start=cursor, end=last, step_s=step_s)
        with transaction.atomic():
            registered = dcgm_devices_register(parsed.devices.values())
            result = gpu_samples_store(
                records=list(enumerate(parsed.samples, start=1)),
                result=IngestResult(),
                source=SampleSource.DCGM,
            )
            pod_runs = pod_presences_record(
                parsed.pods, source=url, step_s=step_s, until=last + timedelta(seconds=step_s)
            )
            PullWatermark.objects.update_or_create(source=source, defaults={"until": last})
        for name, value in (
            ("samples", len(parsed.samples)), ("accepted", result.accepted),
            ("duplicate", result.duplicate), ("rejected", result.rejected),
            ("skipped_points", parsed.skipped_lines), ("registered_gpus", registered),
            ("pod_runs", pod_runs),
        ):  # fmt: skip
            totals[name] += value
        chunks += 1
        cursor = last + timedelta(seconds=step_s)
    return {**counts, **totals, "chunks": chunks}


# Recorded minutes older than this after their rule's evaluation are surely there: the
# rule group runs once a minute, and a ruler (Mimir, Thanos) may lag a little behind.
MINUTES_EVALUATION_LAG_S = 30
MINUTES_CHUNK = timedelta(hours=12)


def query_recorded_minutes(
    url: str, *, first: datetime, last: datetime, timeout_s: float = 30
) -> RecordedMinutes:
    """The recorded minutes ``first``..``last`` (minute starts, inclusive): the raw samples
    of ``frameops:gpu_*:1m`` evaluated in ``[first + delay, last + delay + 60 s)``."""
    from prometheus_api_client import PrometheusConnect

    prom = PrometheusConnect(url=url, disable_ssl=True, timeout=timeout_s)
    at = last + timedelta(seconds=RULE_DELAY_S + 60) - timedelta(milliseconds=1)
    span_ms = int((last - first).total_seconds() * 1000) + 60_000
    series = prom.custom_query(
        f'{{__name__=~"{PREFIX}.+{SUFFIX}"}}[{span_ms}ms]', params={"time": at.timestamp()}
    )
    return minutes_from_recorded(series, now=at)


def dcgm_minutes_pull(
    *,
    url: str | None = None,
    now: datetime | None = None,
    query: Callable[..., RecordedMinutes] = query_recorded_minutes,
) -> dict[str, object]:
    """Minute rollups recorded by Prometheus (``deploy/prometheus/frameops-minute-rules.yml``)
    after the watermark, in chunks of at most 12 hours, each stored with its watermark in
    one transaction. Minutes are upserts by (GPU, minute), so a minute read twice is not
    stored twice; pods on the series are recorded as in the samples pull."""
    from finops.telemetry.ingest import gpu_minutes_store

    url = url or settings.PROMETHEUS_URL
    if not url:
        return {"skipped": "PROMETHEUS_URL is not set"}
    now = now or timezone.now()
    source = _source("dcgm-minutes", url)
    start, gap = _pull_start(source, now=now, step_s=60)
    # The last minute whose rule has surely been evaluated.
    end = _aligned(now - timedelta(seconds=RULE_DELAY_S + 60 + MINUTES_EVALUATION_LAG_S), 60)
    counts: dict[str, object] = {"from": start, "to": end, "mode": "minutes"}
    if gap:
        counts["gap"] = gap
    totals = dict.fromkeys(
        ("minutes", "accepted", "rejected", "skipped_points", "registered_gpus", "pod_runs"), 0
    )
    chunks = 0
    cursor = start
    while cursor <= end:
        last = min(cursor + MINUTES_CHUNK - MINUTE, end)
        recorded = query(url, first=cursor, last=last)
        minutes = [m for m in recorded.minutes if cursor <= m.ts <= last]
        with transaction.atomic():
            registered = dcgm_devices_register(recorded.devices.values())
            result = gpu_minutes_store(
                records=list(enumerate(minutes, start=1)), result=IngestResult()
            )
            pod_runs = pod_presences_record(
                {key: {t for t in stamps if cursor.timestamp() <= t <= last.timestamp()}
                 for key, stamps in recorded.pods.items()},
                source=url, step_s=60, until=last + MINUTE,
            )  # fmt: skip
            PullWatermark.objects.update_or_create(source=source, defaults={"until": last})
        for name, value in (
            ("minutes", len(minutes)), ("accepted", result.accepted),
            ("rejected", result.rejected), ("skipped_points", recorded.skipped),
            ("registered_gpus", registered), ("pod_runs", pod_runs),
        ):  # fmt: skip
            totals[name] += value
        for problem in recorded.problems[:5]:
            log.warning("DCGM minutes pull from %s: %s", url, problem)
        chunks += 1
        cursor = last + MINUTE
    return {**counts, **totals, "chunks": chunks}
