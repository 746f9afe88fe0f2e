"""Telemetry test helpers: a real Prometheus (Debian's) over backfilled history."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrometheusHistory:
    """A real Prometheus over backfilled OpenMetrics text: ``history(text)`` starts it and
    returns its URL; ``history.add_blocks(folder)`` restarts it with more TSDB blocks
    (``promtool tsdb create-blocks-from rules`` output) and returns the new URL."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.data = tmp_path / "data"
        self.procs: list[subprocess.Popen[bytes]] = []

    def __call__(self, openmetrics: str) -> str:
        for tool in ("promtool", "prometheus"):
            if shutil.which(tool) is None:
                pytest.fail(f"Debian's prometheus package ({tool}) is required: `make test`")
        source = self.tmp_path / "series.om"
        source.write_text(openmetrics)
        subprocess.run(  # noqa: S603
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(source),  # noqa: S607
             str(self.data)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        return self._start()

    def add_blocks(self, folder: Path) -> str:
        self.stop()
        for block in folder.iterdir():
            if block.is_dir():
                shutil.move(str(block), self.data / block.name)
        return self._start()

    def _start(self) -> str:
        config = self.tmp_path / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
        port = _free_port()
        log = (self.tmp_path / "prometheus.log").open("a")
        self.procs.append(
            subprocess.Popen(  # noqa: S603
                [  # noqa: S607
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.data}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--storage.tsdb.retention.time=30d",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert self.procs[-1].poll() is None, (self.tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "Prometheus was not ready in 60 s"
            try:
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    return url
            except requests.RequestException:
                pass
            time.sleep(0.3)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)


@pytest.fixture
def history(tmp_path: Path) -> Iterator[PrometheusHistory]:
    """Start Prometheus over the given OpenMetrics text (backfilled by promtool)."""
    prometheus = PrometheusHistory(tmp_path)
    yield prometheus
    prometheus.stop()
