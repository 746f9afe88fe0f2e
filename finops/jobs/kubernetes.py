"""Kubernetes attribution without job events: dcgm-exporter labels each GPU's series with
the pod that holds it (``namespace``, ``pod``, ``container``); the DCGM pull records those
presences (``PodPresence``) with the samples it stores, and this step, run after the pull,
turns them into jobs. GPU time of a pod becomes a job of source ``k8s`` (external id
``NAMESPACE/POD``, team and project from a mapping, one allocation per GPU for each run of
steps the series was present), so such fleets get per-team cost, findings and reports
with no job API. A time-sliced GPU has a series per pod: each pod gets its own allocation
and the ledger splits the GPU's time between the concurrent ones; a MIG instance is its
own device. Pods on GPUs a job event already covers are left to that job. Namespaces no
mapping names are listed (``KubernetesUnmapped``), not guessed."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from collectors.dcgm import PodRef, query_pod_labels
from finops.fleet.models import Gpu
from finops.jobs.models import (
    GpuAllocation,
    JobStatus,
    KubernetesMapping,
    KubernetesUnmapped,
    RenderJob,
)
from finops.jobs.services import AllocationIn, job_record
from finops.telemetry.models import PodPresence

SOURCE = "k8s"
log = logging.getLogger("frameops.k8s")


@dataclass
class K8sReport:
    jobs: int = 0
    allocations: int = 0
    covered: int = 0  # intervals a job event already covers
    unmapped_namespaces: int = 0
    refused: int = 0


def _merge(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def mapping_for(
    pod: PodRef, labels: Mapping[str, str], mappings: list[KubernetesMapping]
) -> KubernetesMapping | None:
    for m in mappings:
        if m.pod_label and labels.get(m.pod_label) == m.pod_label_value:
            return m
    return next((m for m in mappings if m.namespace == pod.namespace), None)


def pods_attribute(
    pods: Mapping[tuple[str, PodRef], list[tuple[datetime, datetime]]],
    *,
    step_s: float,
    until: datetime,
    pod_labels: Callable[[], Mapping[tuple[str, str], Mapping[str, str]]] | None = None,
) -> K8sReport:
    """Record the pods' GPU time (device key and pod -> runs of steps) up to ``until`` (the
    end of the pulled range) as ``k8s`` jobs; a pod still present in the last step stays
    running."""
    report = K8sReport()
    if not pods:
        return report
    mappings = list(KubernetesMapping.objects.select_related("team"))
    labels: Mapping[tuple[str, str], Mapping[str, str]] = {}
    if pod_labels is not None and any(m.pod_label for m in mappings):
        labels = pod_labels()
    gpus = {g.uuid: g for g in Gpu.objects.filter(uuid__in={key for key, _ in pods})}
    by_pod: dict[PodRef, dict[int, list[tuple[datetime, datetime]]]] = defaultdict(dict)
    mapped: dict[PodRef, KubernetesMapping] = {}
    unmapped: dict[str, tuple[set[str], float, datetime, datetime]] = {}
    for (device_key, pod), listed in pods.items():
        gpu = gpus.get(device_key)
        if gpu is None or not listed:
            continue
        runs = sorted(listed)
        mapping = mapping_for(pod, labels.get((pod.namespace, pod.pod), {}), mappings)
        if mapping is None:
            names, seconds, first, last = unmapped.get(
                pod.namespace, (set(), 0.0, runs[0][0], runs[-1][1])
            )
            names.add(pod.pod)
            seconds += sum((b - a).total_seconds() for a, b in runs)
            unmapped[pod.namespace] = (
                names,
                seconds,
                min(first, runs[0][0]),
                max(last, runs[-1][1]),
            )
            continue
        mapped[pod] = mapping
        by_pod[pod].setdefault(gpu.pk, []).extend(runs)
    for namespace, (names, seconds, first, last) in unmapped.items():
        row, _ = KubernetesUnmapped.objects.get_or_create(
            namespace=namespace,
            defaults={"first_seen_at": first, "last_seen_at": last, "gpu_seconds": 0},
        )
        row.pods = sorted(set(row.pods) | names)[:20]
        row.gpu_seconds += seconds
        row.first_seen_at, row.last_seen_at = (
            min(row.first_seen_at, first),
            max(row.last_seen_at, last),
        )
        row.save()
        report.unmapped_namespaces += 1
    for pod, spans_by_gpu in by_pod.items():
        mapping = mapped[pod]
        external_id = f"{pod.namespace}/{pod.pod}"
        existing = RenderJob.objects.filter(source=SOURCE, external_id=external_id).first()
        merged: dict[int, list[tuple[datetime, datetime]]] = defaultdict(list)
        uuid_of = {g.pk: g.uuid for g in gpus.values()}
        if existing is not None:
            for a in existing.allocations.select_related("gpu"):
                merged[a.gpu_id].append((a.start, a.end or until))
                uuid_of[a.gpu_id] = a.gpu.uuid
        for gpu_id, spans in spans_by_gpu.items():
            for start, end in spans:
                covered = (
                    GpuAllocation.objects.filter(gpu_id=gpu_id, start__lt=end)
                    .filter(Q(end__isnull=True) | Q(end__gt=start))
                    .exclude(job__source=SOURCE)
                )
                if covered.exists():
                    report.covered += 1
                    continue
                merged[gpu_id].append((start, end))
        allocations = [
            AllocationIn(
                uuid=uuid_of.get(gpu_id) or Gpu.objects.get(pk=gpu_id).uuid, start=a, end=b
            )
            for gpu_id, spans in merged.items()
            for a, b in _merge(spans)
        ]
        if not allocations:
            continue
        started = min(a.start for a in allocations)
        ended = max(a.end for a in allocations if a.end is not None)
        running = ended >= until - timedelta(seconds=step_s * 0.5)
        status = JobStatus.RUNNING if running else JobStatus.SUCCEEDED
        if existing is not None and existing.status != JobStatus.RUNNING:
            status = existing.status  # a pod's job moves forward only
        try:
            job_record(
                source=SOURCE, external_id=external_id, team=mapping.team, status=status,
                project=mapping.project, model_name=pod.container, started_at=started,
                finished_at=None if status == JobStatus.RUNNING else ended,
                allocations=allocations,
            )  # fmt: skip
        except ValidationError as exc:
            report.refused += 1
            log.warning("k8s pod %s not recorded: %s", external_id, exc)
            continue
        report.jobs += 1
        report.allocations += len(allocations)
    return report


def pod_presences_attribute(
    *, pod_labels: Callable[..., Mapping[tuple[str, str], Mapping[str, str]]] = query_pod_labels
) -> K8sReport:
    """Attribute the pod presences the DCGM pull recorded, a pulled range at a time (oldest
    first; each in one transaction that deletes what it attributed), with the pods' labels
    read from the Prometheus they came from at the end of that range."""
    report = K8sReport()
    while True:
        with transaction.atomic():
            first = (
                PodPresence.objects.select_for_update(skip_locked=True)
                .order_by("until", "id")
                .values("source", "until", "step_s")
                .first()
            )
            if first is None:
                return report
            rows = list(
                PodPresence.objects.select_for_update(skip_locked=True).filter(
                    source=first["source"], until=first["until"], step_s=first["step_s"]
                )
            )
            pods: dict[tuple[str, PodRef], list[tuple[datetime, datetime]]] = defaultdict(list)
            for row in rows:
                pods[(row.device_key, PodRef(row.namespace, row.pod, row.container))].append(
                    (row.start, row.end)
                )
            # Labels as of the range's last step.
            at = first["until"] - timedelta(seconds=first["step_s"])
            done = pods_attribute(
                pods, step_s=first["step_s"], until=first["until"],
                pod_labels=lambda url=first["source"], at=at: pod_labels(url, at=at),
            )  # fmt: skip
            PodPresence.objects.filter(pk__in=[r.pk for r in rows]).delete()
        for name in ("jobs", "allocations", "covered", "unmapped_namespaces", "refused"):
            setattr(report, name, getattr(report, name) + getattr(done, name))
