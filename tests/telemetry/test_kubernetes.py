"""Kubernetes attribution end to end: dcgm-exporter series labelled with pods (and
kube-state-metrics' kube_pod_labels) backfilled into a real Prometheus, pulled by
FrameOps, and charged by the ledger to the mapped teams with no job event; a time-sliced
GPU is shared between its pods; an unmapped namespace is listed, not guessed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from collectors.dcgm import parse_exposition
from finops.costing.engine import ledger_recompute
from finops.costing.selectors import AllocationQuery, allocation_report
from finops.fleet.models import Gpu
from finops.jobs.kubernetes import pod_presences_attribute
from finops.jobs.models import KubernetesMapping, KubernetesUnmapped, RenderJob
from finops.telemetry.dcgm_pull import dcgm_pull
from finops.telemetry.models import PodPresence

pytestmark = pytest.mark.django_db

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
GPU = 'gpu="{i}",UUID="GPU-k{i}",Hostname="k8s-node-1",modelName="NVIDIA H100 80GB HBM3"'


def _series(t0: float) -> str:
    """An hour at 15 s: GPU 0 held by render/job-a all hour; GPU 1 time-sliced between
    render/job-b and vfx/job-c (label team=vfx) for the first half hour; GPU 2 held by
    scratch/notebook (no mapping) for a quarter hour."""
    lines = ["# TYPE DCGM_FI_DEV_GPU_UTIL gauge"]
    holders = [
        (0, 'namespace="render",pod="job-a",container="wan"', 240),
        (1, 'namespace="render",pod="job-b",container="wan"', 120),
        (1, 'namespace="vfx",pod="job-c",container="hunyuan"', 120),
        (2, 'namespace="scratch",pod="notebook",container="jupyter"', 60),
    ]
    for gpu, pod, steps in holders:
        labels = GPU.format(i=gpu) + "," + pod
        lines += [f"DCGM_FI_DEV_GPU_UTIL{{{labels}}} 80 {t0 + 15 * i:.3f}" for i in range(steps)]
    lines.append("# TYPE kube_pod_labels gauge")
    for i in range(240):
        lines.append(
            f'kube_pod_labels{{namespace="vfx",pod="job-c",label_team="vfx"}} 1 {t0 + 15 * i:.3f}'
        )
    return "\n".join([*lines, "# EOF"]) + "\n"


def test_pods_are_charged_to_their_teams_with_no_job_event(history, settings, team_a, team_b):
    t0 = (NOW - timedelta(hours=3)).timestamp()
    url = history(_series(t0))
    KubernetesMapping.objects.create(namespace="render", team=team_a, project="trailer")
    KubernetesMapping.objects.create(pod_label="team", pod_label_value="vfx", team=team_b)
    start = datetime.fromtimestamp(t0, tz=UTC)
    settings.DCGM_PULL_LOOKBACK_S = 3 * 3600 + 60
    pulled = dcgm_pull(url=url, now=start + timedelta(hours=1, minutes=1), step_s=15)
    assert pulled["registered_gpus"] == 3 and pulled["pod_runs"] > 0
    # The pull only records where pods were; attribution is the step after it.
    assert not RenderJob.objects.filter(source="k8s").exists()
    attributed = pod_presences_attribute()
    assert attributed.jobs == 3 and attributed.unmapped_namespaces == 1
    assert not PodPresence.objects.exists()
    jobs = {j.external_id: j for j in RenderJob.objects.filter(source="k8s")}
    assert set(jobs) == {"render/job-a", "render/job-b", "vfx/job-c"}
    assert jobs["render/job-a"].team == team_a and jobs["render/job-a"].project == "trailer"
    assert jobs["vfx/job-c"].team == team_b  # by the pod label, not a namespace mapping
    (held,) = jobs["render/job-a"].allocations.all()
    assert (held.start, held.end) == (start, start + timedelta(hours=1))
    unmapped = KubernetesUnmapped.objects.get()
    assert unmapped.namespace == "scratch" and unmapped.pods == ["notebook"]
    assert unmapped.gpu_seconds == 15 * 60
    ledger_recompute(start=start.replace(minute=0), end=start + timedelta(hours=2))
    report = allocation_report(
        query=AllocationQuery.from_params(
            {"window": f"{start.isoformat()},{(start + timedelta(hours=1)).isoformat()}",
             "aggregate": "team"}
        ),
        teams=type(team_a).objects.all(), all_teams=True,
    )  # fmt: skip
    hours = {r["name"]: Decimal(r["gpu_hours"]) for r in report["steps"][0]["rows"]}
    # GPU 0 all hour and half of GPU 1's shared half hour for studio-a; the other half for
    # studio-b; GPU 1's second half hour, GPU 2 (unmapped) and nothing else are idle.
    assert hours["studio-a"] == Decimal("1.25")
    assert hours["studio-b"] == Decimal("0.25")
    # A second pull of the same range changes nothing; a later one extends the running job.
    again = dcgm_pull(url=url, now=start + timedelta(hours=1, minutes=1), step_s=15)
    assert again["samples"] == 0 and pod_presences_attribute().jobs == 0
    assert RenderJob.objects.filter(source="k8s").count() == 3


def test_the_scrape_prints_each_devices_pods():
    text = (
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-s",Hostname="n1",namespace="render",pod="p1",container="c"} 50\n'
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-s",Hostname="n1",namespace="vfx",pod="p2",container="c"} 50\n'
    )
    result = parse_exposition(text, scraped_at=NOW)
    assert [p.pod for p in result.pods_of("GPU-s")] == ["p1", "p2"]
    assert not Gpu.objects.exists()


def test_mappings_through_the_api(client, team_a, team_b, alice, root):
    KubernetesUnmapped.objects.create(namespace="scratch", pods=["notebook"], gpu_seconds=900,
                                      first_seen_at=NOW, last_seen_at=NOW)  # fmt: skip
    client.force_login(alice)  # a team's manager: the mapping is fleet-wide
    assert client.get("/api/v1/kubernetes/unmapped").status_code == 403
    assert client.post("/api/v1/kubernetes/mappings", {"namespace": "render", "team": "studio-a"},
                       content_type="application/json").status_code == 403  # fmt: skip
    client.force_login(root)
    listed = client.get("/api/v1/kubernetes/unmapped").json()["results"]
    assert listed == [{"namespace": "scratch", "pods": ["notebook"], "gpu_hours": 0.25,
                       "first_seen_at": listed[0]["first_seen_at"], "last_seen_at": listed[0]["last_seen_at"]}]  # fmt: skip
    both = client.post("/api/v1/kubernetes/mappings",
                       {"namespace": "render", "pod_label": "team", "team": "studio-a"},
                       content_type="application/json")  # fmt: skip
    assert both.status_code == 400 and "namespace" in both.json()["extra"]["fields"]
    unknown = client.post("/api/v1/kubernetes/mappings", {"namespace": "render", "team": "nope"},
                          content_type="application/json")  # fmt: skip
    assert unknown.status_code == 400 and "team" in unknown.json()["extra"]["fields"]
    made = client.post("/api/v1/kubernetes/mappings",
                       {"namespace": "scratch", "team": "studio-a", "project": "notebooks"},
                       content_type="application/json")  # fmt: skip
    assert made.status_code == 201
    assert client.post("/api/v1/kubernetes/mappings", {"namespace": "scratch", "team": "studio-a"},
                       content_type="application/json").status_code == 400  # fmt: skip
    assert [
        m["namespace"] for m in client.get("/api/v1/kubernetes/mappings").json()["results"]
    ] == ["scratch"]


def test_a_mig_instance_is_its_own_device(team_a):
    from collectors.dcgm import Device, PodRef
    from finops.jobs.kubernetes import pods_attribute
    from finops.telemetry.dcgm_pull import dcgm_devices_register

    parent = Device(
        key="GPU-m", uuid="GPU-m", index=0, model="NVIDIA H100 80GB HBM3", hostname="k8s-node-2"
    )
    instance = Device(key="GPU-m/1", uuid="GPU-m", index=0, model="NVIDIA H100 80GB HBM3",
                      hostname="k8s-node-2", mig_instance_id=1, mig_profile="1g.10gb")  # fmt: skip
    dcgm_devices_register([parent, instance])
    KubernetesMapping.objects.create(namespace="render", team=team_a)
    runs = [(NOW, NOW + timedelta(minutes=2))]
    report = pods_attribute({("GPU-m/1", PodRef("render", "small-job")): runs}, step_s=15,
                            until=NOW + timedelta(minutes=10))  # fmt: skip
    assert report.jobs == 1
    (held,) = RenderJob.objects.get(source="k8s", external_id="render/small-job").allocations.all()
    assert held.gpu.uuid == "GPU-m/1" and held.gpu.mig_parent.uuid == "GPU-m"
    assert (held.start, held.end) == (NOW, NOW + timedelta(minutes=2))
