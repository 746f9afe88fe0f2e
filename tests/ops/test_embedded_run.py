"""`make run` on the embedded defaults: SQLite under var/, an admin user, a served site."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_make_run_serves_health_and_admin_login_from_sqlite(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DJANGO_"))}
    env.update(FRAMEOPS_VAR_DIR=str(tmp_path), PORT=str(port))
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(  # noqa: S603
        # One simulated day keeps the test short; `make run` simulates fourteen by default.
        ["make", "--no-print-directory", "run", f"PORT={port}", "SIM_DAYS=1"],  # noqa: S607
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 420  # a stale .venv stamp reinstalls first
        status, body = 0, ""
        while time.monotonic() < deadline:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/health/")
                break
            except OSError:
                assert proc.poll() is None, (tmp_path / "run.log").read_text()
                time.sleep(0.5)
        assert status == 200, (tmp_path / "run.log").read_text()
        assert json.loads(body)["database"]["vendor"] == "sqlite"
        status, body = _get(f"http://127.0.0.1:{port}/admin/login/")
        assert status == 200
        assert 'name="password"' in body
        assert (tmp_path / "frameops.sqlite3").exists()
        output = (tmp_path / "run.log").read_text()
        assert "Created superuser 'admin' with one-time password:" in output
        assert "Created 'sim-manager' (manager of sim-studio-a" in output
        assert "Simulated 1 days of 64 GPUs" in output
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
