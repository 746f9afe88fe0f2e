"""A real Celery worker, on the real Redis broker, runs a task against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.db import connection
from django.utils import timezone

from finops.fleet.models import Gpu, Node, Site
from finops.telemetry.models import GpuSample

ROOT = Path(__file__).resolve().parents[2]
BROKER_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture
def broker() -> str:
    client = redis.Redis.from_url(BROKER_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail("Redis must run on 127.0.0.1:6379 (.ci/run starts it)")
    client.flushdb()
    yield BROKER_URL
    client.flushdb()


@pytest.mark.django_db(transaction=True)
def test_worker_consumes_the_ingest_queue_and_purges_old_samples(broker, tmp_path):
    site = Site.objects.create(slug="lab", provider="on-prem")
    gpu = Gpu.objects.create(
        node=Node.objects.create(site=site, hostname="lab-1"), uuid="GPU-1", index=0
    )
    now = timezone.now()
    GpuSample.objects.create(gpu=gpu, ts=now - timedelta(days=20), sm_util_pct=10)
    GpuSample.objects.create(gpu=gpu, ts=now - timedelta(days=1), sm_util_pct=20)

    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": broker,
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "finops",
            "worker",
            "-Q",
            "ingest",
            "-P",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        producer = Celery(broker=broker)
        producer.send_task("finops.telemetry.tasks.purge_raw_samples", queue="ingest")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and GpuSample.objects.count() != 1:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.5)
        remaining = list(GpuSample.objects.values_list("sm_util_pct", flat=True))
        assert remaining == [20], (tmp_path / "worker.log").read_text()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
    assert "succeeded" in (tmp_path / "worker.log").read_text()
