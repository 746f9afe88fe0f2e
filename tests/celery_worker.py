"""A real Celery worker process for fault tests: FrameOps' app on a Redis broker (a database
number of its own, flushed), killed with SIGKILL when a test says so."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]


def wait_until(what: str, condition: Callable[[], object], *, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


class Worker:
    """``celery -A finops worker`` on the given queues, one task at a time (solo pool: the
    task runs in the worker process itself, so SIGKILL kills it mid-task)."""

    def __init__(self, env: dict[str, str], queues: str, log: Path) -> None:
        self.env, self.queues, self.log = env, queues, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(  # noqa: S603
                [sys.executable, "-m", "celery", "-A", "finops", "worker", "-Q", self.queues,
                 "--pool", "solo", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
                 "--without-heartbeat", "-n", f"fault-{time.monotonic_ns()}@%h"],
                cwd=ROOT, env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def broker_env(broker_url: str, database_url: str, **extra: str) -> dict[str, str]:
    redis.Redis.from_url(broker_url).flushdb()
    return {
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        # Unacknowledged tasks of a dead worker come back after 3 s (an hour in production).
        "CELERY_VISIBILITY_TIMEOUT_S": "3",
        **extra,
    }
