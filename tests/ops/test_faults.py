"""Faults survived with nothing lost, on real components: a private PostgreSQL cluster
restarted while an agent pushes through gunicorn; Celery workers killed (SIGKILL) in the
middle of a ledger day, a detector run and a report send; the broker (a private Redis)
restarted while tasks are published and run."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import requests

from collectors.agent import Agent, Spool, node_registration
from collectors.nvml import NvmlSource
from tests.collectors.fake_pynvml import FakeNvml
from tests.gunicorn_server import ROOT, gunicorn
from tests.pg_cluster import private_cluster


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**os.environ, **env},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_postgresql_restarted_while_an_agent_pushes_loses_and_doubles_nothing(tmp_path):
    with private_cluster() as pg:
        env = {"DATABASE_URL": pg.url, "DATABASE_CONN_MAX_AGE": "600"}
        _manage(env, "migrate", "--no-input", "-v0")
        key = _manage(env, "create_api_key", "--name", "agent", "--scope", "ingest:write").strip()
        with gunicorn(env, workers=2) as url:
            nvml = NvmlSource(FakeNvml())
            devices = nvml.open()
            agent = Agent(server=url, key=key, sources={"gpu": nvml},
                          spool=Spool(tmp_path / "spool", max_bytes=2**24),
                          registration=node_registration(hostname="gpu-a1", site="lab",
                                                         provider="on-prem", region="",
                                                         instance_type="", devices=devices),
                          timeout_s=5)  # fmt: skip
            t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
            answers = []
            for second in range(60):
                if second == 20:
                    pg.stop()  # the database goes away under the running web workers
                    answers.append(requests.post(
                        f"{url}/api/v1/ingest/gpu-samples", data=b"{}", timeout=10,
                        headers={"Authorization": f"Bearer {key}"}))  # fmt: skip
                if second == 40:
                    pg.start()
                agent.poll(now=t0 + timedelta(seconds=second))
                if second % 5 == 4:
                    agent.flush()
            agent.flush()
            # While it was away: a 503 that says so, never a 500; the agent spooled.
            (away,) = answers
            assert away.status_code == 503, away.text
            assert away.headers["Retry-After"] == "5"
            assert "database is unavailable" in away.json()["message"]
            assert agent.stats.spooled_batches >= 3
            assert agent.stats.dead_letter_batches == 0
            assert len(agent.spool) == 0
            # Back: the same web workers answer again, no restart of their own.
            assert requests.get(f"{url}/health/", timeout=10).status_code == 200
        with psycopg.connect(pg.url) as conn:
            stored, distinct = conn.execute(
                "SELECT count(*), count(DISTINCT (gpu_id, ts)) FROM telemetry_gpusample"
            ).fetchone()
    assert stored == distinct == 60 * 4  # every sample of 4 devices, once
