"""Telemetry test helpers: a real Prometheus (Debian's) over backfilled history."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def history(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start Prometheus over the given OpenMetrics text (backfilled by promtool); yields a
    function that returns its URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(openmetrics: str) -> str:
        for tool in ("promtool", "prometheus"):
            if shutil.which(tool) is None:
                pytest.fail(f"Debian's prometheus package ({tool}) is required: `make test`")
        data = tmp_path / "data"
        source = tmp_path / "series.om"
        source.write_text(openmetrics)
        subprocess.run(  # noqa: S603
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(source), str(data)],  # noqa: S607
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        config = tmp_path / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
        port = _free_port()
        log = (tmp_path / "prometheus.log").open("w")
        procs.append(
            subprocess.Popen(  # noqa: S603
                [  # noqa: S607
                    "prometheus",
                    f"--config.file={config}",
                    f"--storage.tsdb.path={data}",
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
            assert procs[-1].poll() is None, (tmp_path / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "Prometheus was not ready in 60 s"
            try:
                if requests.get(f"{url}/-/ready", timeout=2).status_code == 200:
                    return url
            except requests.RequestException:
                pass
            time.sleep(0.3)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)
