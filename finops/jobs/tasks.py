from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from finops.jobs.kubernetes import pod_presences_attribute


@shared_task(name="finops.jobs.tasks.attribute_kubernetes_pods")
def attribute_kubernetes_pods() -> dict[str, int]:
    """The pods the DCGM pull saw on GPUs, as ``k8s`` jobs (a step of its own after it)."""
    return asdict(pod_presences_attribute())
