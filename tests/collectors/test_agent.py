"""The agent against a real FrameOps server that goes away mid-stream and comes back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from collectors.agent import Agent, Spool, node_registration
from collectors.nvml import NvmlSource
from finops.accounts.services import api_key_create
from finops.fleet.models import Node, StorageDevice
from finops.telemetry.models import GpuSample
from tests.collectors.fake_pynvml import FakeNvml
from tests.live_server import LiveServer


def _agent(server: LiveServer, tmp_path, *, max_bytes: int = 2**20) -> Agent:  # type: ignore[no-untyped-def]
    _, key = api_key_create(name="agent gpu-a1", scopes=["ingest:write"])
    nvml = NvmlSource(FakeNvml())
    devices = nvml.open()
    return Agent(
        server=server.url,
        key=key,
        sources={"gpu": nvml},
        spool=Spool(tmp_path / "spool", max_bytes=max_bytes),
        registration=node_registration(
            hostname="gpu-a1",
            site="lab",
            provider="on-prem",
            region="",
            instance_type="",
            devices=devices,
        ),
        timeout_s=2,
    )


@pytest.mark.django_db(transaction=True)
def test_server_outage_is_spooled_and_replayed_exactly_once(server, tmp_path):
    agent = _agent(server, tmp_path)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    devices = 4  # two GPUs and two MIG instances
    for second in range(30):
        if second == 10:
            server.stop()
        if second == 20:
            server.start()
        agent.poll(now=t0 + timedelta(seconds=second))
        if second % 5 == 4:
            agent.flush()
    assert agent.stats.spooled_batches == 2  # the flushes at 14 s and 19 s
    assert agent.stats.replayed_batches == 2
    assert len(agent.spool) == 0
    assert GpuSample.objects.count() == 30 * devices
    assert GpuSample.objects.filter(ts=t0 + timedelta(seconds=12)).count() == devices
    assert agent.stats.accepted == 30 * devices
    assert agent.stats.duplicate == 0
    assert agent.stats.rejected == 0

    # A batch re-sent after a lost response is stored once: the server counts duplicates.
    agent.poll(now=t0 + timedelta(seconds=12))
    agent.flush()
    assert agent.stats.duplicate == devices
    assert GpuSample.objects.count() == 30 * devices


@pytest.mark.django_db(transaction=True)
def test_full_spool_drops_the_oldest_and_counts_them(server, tmp_path):
    server.stop()
    agent = _agent(server, tmp_path, max_bytes=1200)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    for second in range(12):
        agent.poll(now=t0 + timedelta(seconds=second))
        agent.flush()
    assert agent.stats.spooled_batches == 12
    assert agent.stats.dropped_batches > 0
    assert agent.stats.dropped_samples == agent.stats.dropped_batches * 4
    kept = len(agent.spool)
    assert kept == 12 - agent.stats.dropped_batches
    server.start()
    agent.flush()
    # What the spool kept arrives, newest seconds included; what it dropped does not.
    assert GpuSample.objects.count() == kept * 4
    assert GpuSample.objects.filter(ts=t0 + timedelta(seconds=11)).count() == 4
    assert not GpuSample.objects.filter(ts=t0).exists()


@pytest.mark.django_db(transaction=True)
def test_wrong_key_keeps_data_in_the_spool(server, tmp_path):
    agent = _agent(server, tmp_path)
    agent.session.headers["Authorization"] = "Bearer fo_not-a-real-key"
    agent.poll()
    agent.flush()
    assert len(agent.spool) == 1
    assert any("401" in e for e in agent.stats.errors)
    assert not GpuSample.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_restarted_agent_keeps_the_nodes_pricing(server, tmp_path):
    _, key = api_key_create(name="agent lab-1", scopes=["ingest:write"])
    nvml = NvmlSource(FakeNvml())
    devices = nvml.open()
    assert nvml.interconnect() == "nvlink"  # the H100's first links are active

    def start(**options):  # type: ignore[no-untyped-def]
        agent = Agent(server=server.url, key=key, sources={}, spool=Spool(tmp_path / "s", max_bytes=2**20),
                      registration=node_registration(hostname="lab-1", site="lab", provider="on-prem",
                                                     region="", devices=devices, **options))  # fmt: skip
        agent.flush()
        assert agent.registered, agent.stats.errors

    start(instance_type="dgx-h100", pricing_model="on-prem", interconnect=nvml.interconnect(),
          volume_types={"nvme0n1": "local-nvme-gen4"})  # fmt: skip
    start(instance_type=None)  # restarted without the options
    node = Node.objects.get(hostname="lab-1")
    assert (node.instance_type, node.pricing_model, node.interconnect) == (
        "dgx-h100", "on-prem", "nvlink",
    )  # fmt: skip
    assert StorageDevice.objects.get(node=node, name="nvme0n1").volume_type == "local-nvme-gen4"


def test_interconnect_is_pcie_without_active_links():
    fake = FakeNvml()
    fake.gpus = fake.gpus[1:]  # the L4 alone: NVML says its links are not supported
    nvml = NvmlSource(fake)
    nvml.open()
    assert nvml.interconnect() == "pcie"
    assert "interconnect" not in node_registration(
        hostname="h", site="s", provider="aws", region="", instance_type=None, devices=[]
    )


@pytest.mark.django_db(transaction=True)
def test_the_agent_without_nvml_reports_storage_and_says_why(server, tmp_path, caplog):
    import logging

    from collectors.agent import main

    _, key = api_key_create(name="agent cpu-1", scopes=["ingest:write"])
    caplog.set_level(logging.INFO, logger="frameops.agent")
    code = main(["--server", server.url, "--key", key, "--hostname", "cpu-1", "--site", "lab",
                 "--spool", str(tmp_path / "spool"), "--interval", "0.2", "--flush-every", "2",
                 "--duration", "1", "--volume-type", "vda=gp3"])  # fmt: skip
    assert code == 0
    text = caplog.text
    assert "NVML is not available on this host" in text  # no driver on this machine
    assert "--no-gpu" in text
    assert "reporting cpu-1 to http://127.0.0.1" in text
    assert "no GPUs (storage only)" in text
    assert "registered node cpu-1" in text
    node = Node.objects.get(hostname="cpu-1")
    devices = list(StorageDevice.objects.filter(node=node))
    assert devices, "the host's disks are registered"
    assert all(d.capacity_bytes for d in devices if d.name != "vda" or d.kind)
    mounted = [d for d in devices if d.mount_point]
    assert mounted and all(d.filesystem and d.capacity_bytes for d in mounted)


def test_startup_summary_lists_gpus_and_storage():
    from collectors.agent import startup_summary
    from collectors.storage import StorageDeviceInfo

    nvml = NvmlSource(FakeNvml())
    text = startup_summary("https://fo.example", "gpu-a1", nvml.open(),
                           [StorageDeviceInfo("nvme0n1", "local-nvme", 4 * 10**12, "xfs", "/scratch")])  # fmt: skip
    assert "reporting gpu-a1 to https://fo.example:" in text
    assert "GPU 0: NVIDIA H100 80GB HBM3, 80 GiB, GPU-h100" in text
    assert "(MIG 1 of GPU-h100)" in text
    assert "storage nvme0n1: local-nvme, 4,000 GB, xfs on /scratch" in text


@pytest.mark.django_db(transaction=True)
def test_a_changed_storage_device_registers_the_node_again(server, tmp_path):
    from collectors.storage import StorageDeviceInfo

    _, key = api_key_create(name="agent st-1", scopes=["ingest:write"])
    disks = [StorageDeviceInfo("nvme0n1", "local-nvme", 10**12, "xfs", "/scratch")]
    agent = Agent(server=server.url, key=key, sources={}, spool=Spool(tmp_path / "s", max_bytes=2**20),
                  registration=node_registration(hostname="st-1", site="lab", provider="on-prem", region="",
                                                 instance_type=None, devices=[], storage=disks,
                                                 volume_types={"nvme0n1": "local-nvme-gen4"}),
                  storage_devices=lambda: disks, rescan_s=0)  # fmt: skip
    agent.flush()
    device = StorageDevice.objects.get(node__hostname="st-1", name="nvme0n1")
    assert (device.capacity_bytes, device.volume_type) == (10**12, "local-nvme-gen4")
    disks = [StorageDeviceInfo("nvme0n1", "local-nvme", 2 * 10**12, "xfs", "/scratch")]  # grown
    agent.flush()
    device.refresh_from_db()
    assert (device.capacity_bytes, device.volume_type) == (2 * 10**12, "local-nvme-gen4")


@pytest.mark.django_db(transaction=True)
def test_a_batch_the_server_fails_on_is_set_aside_and_later_batches_go_ahead(server, tmp_path):
    import gzip
    import json

    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    poison = (t0 + timedelta(seconds=7)).isoformat().replace("+00:00", "Z")
    inner = server.app

    def failing_on_one_batch(environ, start_response):  # type: ignore[no-untyped-def]
        if environ["PATH_INFO"].endswith("/gpu-samples"):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            if poison.encode() in gzip.decompress(body):
                start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
                return [b"boom: this batch breaks the server"]
            import io

            environ["wsgi.input"] = io.BytesIO(body)
        return inner(environ, start_response)

    server.stop()
    server.app = failing_on_one_batch
    server.start()
    agent = _agent(server, tmp_path)
    agent.max_attempts, agent.retry_base_s = 3, 0.0
    devices = 4
    for second in range(30):
        agent.poll(now=t0 + timedelta(seconds=second))
        if second % 5 == 4:
            agent.flush()
    assert agent.stats.failed_attempts == 3  # the first try and two replays
    assert agent.stats.dead_letter_batches == 1
    assert agent.stats.dead_letter_samples == 5 * devices
    assert len(agent.spool) == 0  # nothing waits behind it
    assert GpuSample.objects.count() == 25 * devices  # every other batch stored, once
    assert not GpuSample.objects.filter(ts=t0 + timedelta(seconds=7)).exists()
    (note,) = (tmp_path / "spool" / "dead-letter").glob("*.json")
    recorded = json.loads(note.read_text())
    assert recorded["attempts"] == 3
    assert "HTTP 500" in recorded["reason"]
    assert "boom" in recorded["answer"]


def test_rejected_lines_are_counted_not_retried(tmp_path):
    class Answer:
        status_code = 200
        text = ""

        def json(self):  # type: ignore[no-untyped-def]
            return {"accepted": 3, "duplicate": 0, "rejected": 1,
                    "errors": [{"line": 2, "field": "power_w", "message": "is out of range"}]}  # fmt: skip

    class Session:
        headers: dict[str, str] = {}
        posts = 0

        def post(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            Session.posts += 1
            return Answer()

    nvml = NvmlSource(FakeNvml())
    nvml.open()
    agent = Agent(server="http://127.0.0.1:9", key="k", sources={"gpu": nvml},
                  spool=Spool(tmp_path / "s", max_bytes=2**20), session=Session())  # type: ignore[arg-type]  # fmt: skip
    agent.poll()
    agent.flush()
    agent.flush()
    assert Session.posts == 1
    assert (agent.stats.accepted, agent.stats.rejected) == (3, 1)
    assert len(agent.spool) == 0
    assert any("power_w" in e for e in agent.stats.errors)
