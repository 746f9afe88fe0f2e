"""FrameOps under gunicorn, its production server, on a free loopback port, for tests that
need what only a real server does (chunked bodies, restarts of what it talks to)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url(settings_databases: dict[str, dict[str, object]]) -> str:
    """The URL of the database the test runs on (pytest-django's test database)."""
    db = settings_databases["default"]
    host, port = db.get("HOST") or "127.0.0.1", db.get("PORT") or 5432
    user = db.get("USER") or "root"
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int = 1, timeout_s: float = 30) -> Iterator[str]:
    """Serve FrameOps; yields its base URL; stops it (and waits) on exit."""
    port = free_port()
    log = open(os.devnull, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-m",
            "gunicorn",
            "finops.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env={**os.environ, "ALLOWED_HOSTS": "127.0.0.1", **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if requests.get(f"{url}/health/", timeout=2).status_code in (200, 503):
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start (exit {process.poll()})")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
