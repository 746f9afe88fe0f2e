"""DCGM through a real Prometheus: Debian's prometheus scrapes a fixture dcgm-exporter
served by this test on loopback; the pull stores samples, the rollup finds them."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from django.utils import timezone

from finops.fleet.models import Gpu
from finops.telemetry.dcgm_pull import dcgm_pull
from finops.telemetry.models import GpuMinute, GpuSample, PullWatermark
from finops.telemetry.rollups import rollups_recompute

pytestmark = pytest.mark.django_db

GPUS = [(i, f"GPU-0000000{i}-aaaa-bbbb-cccc-dddddddddddd") for i in range(4)]


def _exposition() -> str:
    """Four H100s on gpu-a1 with HELP/TYPE lines, as dcgm-exporter serves them."""
    lines = []
    metrics = {
        "DCGM_FI_DEV_GPU_UTIL": ("gauge", "GPU utilization (in %).", lambda i: 20 * i + 10),
        "DCGM_FI_DEV_FB_USED": ("gauge", "Framebuffer memory used (in MiB).", lambda i: 1024 * (i + 1)),
        "DCGM_FI_DEV_FB_FREE": ("gauge", "Framebuffer memory free (in MiB).", lambda i: 80000),
        "DCGM_FI_DEV_POWER_USAGE": ("gauge", "Power draw (in W).", lambda i: 100.0 + i),
        "DCGM_FI_DEV_GPU_TEMP": ("gauge", "GPU temperature (in C).", lambda i: 40 + i),
        "DCGM_FI_DEV_POWER_VIOLATION": ("counter", "Throttling duration due to power constraints (in us).",
                                        lambda i: int(time.time() * 1e6) if i == 3 else 0),
    }  # fmt: skip
    for name, (kind, help_text, value) in metrics.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for index, uuid in GPUS:
            labels = (
                f'gpu="{index}",UUID="{uuid}",pci_bus_id="00000000:{index:02x}:00.0",'
                f'device="nvidia{index}",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-a1"'
            )
            lines.append(f"{name}{{{labels}}} {value(index)}")
    return "\n".join(lines) + "\n"


class _Exporter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = _exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("Debian's prometheus package is required: `make test` installs it")
    exporter = ThreadingHTTPServer(("127.0.0.1", 0), _Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    port = _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: dcgm\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter.server_address[1]}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(  # noqa: S603
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "Prometheus did not take two scrapes in 60 s"
            try:
                answer = requests.get(
                    f"{url}/api/v1/query",
                    params={"query": "min(count_over_time(DCGM_FI_DEV_GPU_UTIL[1m]))"},
                    timeout=2,
                ).json()
                result = answer["data"]["result"]
                if result and float(result[0]["value"][1]) >= 2:
                    break
            except (requests.RequestException, KeyError, ValueError):
                pass
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        exporter.shutdown()
        log.close()


def test_pull_from_prometheus_stores_samples_and_rollups(prometheus):
    time.sleep(2)  # the pull stops a step short of now: let those scrapes fall inside
    now = timezone.now()
    first = dcgm_pull(url=prometheus, now=now, step_s=1)

    assert first["registered_gpus"] == 4
    assert first["accepted"] >= 4 * 2
    assert first["rejected"] == 0
    gpus = {g.uuid: g for g in Gpu.objects.select_related("node", "model")}
    assert set(gpus) == {uuid for _, uuid in GPUS}
    assert {g.node.hostname for g in gpus.values()} == {"gpu-a1"}
    assert {g.model.name for g in gpus.values()} == {"H100 SXM"}
    for index, uuid in GPUS:
        sample = GpuSample.objects.filter(gpu__uuid=uuid).latest("ts")
        assert sample.source == "dcgm"
        assert sample.sm_util_pct == 20 * index + 10
        assert sample.mem_used_bytes == 1024 * (index + 1) * 2**20
        assert sample.mem_total_bytes == (1024 * (index + 1) + 80000) * 2**20
        assert sample.power_w == 100.0 + index
    # The power-violation counter of GPU 3 grows: its samples carry the power-cap bit.
    throttled = GpuSample.objects.filter(gpu__uuid=GPUS[3][1], clocks_event_reasons=4)
    assert throttled.exists()
    assert not GpuSample.objects.filter(gpu__uuid=GPUS[0][1], clocks_event_reasons=4).exists()

    # Resuming from the watermark reads nothing twice.
    assert PullWatermark.objects.get().until == first["to"]
    second = dcgm_pull(url=prometheus, now=now + timedelta(seconds=2), step_s=1)
    assert second["duplicate"] == 0
    assert second["from"] == first["to"] + timedelta(seconds=1)

    stored = GpuSample.objects.order_by("ts")
    rollups_recompute(start=stored.first().ts, end=stored.last().ts + timedelta(seconds=1))
    minutes = GpuMinute.objects.filter(gpu__uuid=GPUS[1][1])
    assert minutes.exists()
    assert all(m.util_max_pct == 30.0 for m in minutes)
