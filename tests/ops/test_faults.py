"""Faults survived with nothing lost, on real components: a private PostgreSQL cluster
restarted while an agent pushes through gunicorn; Celery workers killed (SIGKILL) in the
middle of a ledger day, a detector run and a report send; the broker (a private Redis)
restarted while tasks are published and run."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
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


# --- Celery workers killed mid-task -------------------------------------------------------

BROKER = "redis://127.0.0.1:6379/11"


def _sender():  # type: ignore[no-untyped-def]
    from celery import Celery

    app = Celery("fault-test", broker=BROKER)
    app.conf.broker_transport_options = {"visibility_timeout": 3}
    return app


def _lock(database_url: str, table: str):  # type: ignore[no-untyped-def]
    """Hold an exclusive lock on ``table`` in an open transaction: a task that reaches it
    waits there, in the middle of its work."""
    conn = psycopg.connect(database_url)
    conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    return conn


def _waiting_on(conn, table: str) -> bool:  # type: ignore[no-untyped-def]
    with psycopg.connect(conn.info.dsn, autocommit=True) as probe:
        return bool(probe.execute(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE %s",
            [f"%{table}%"],
        ).fetchone())  # fmt: skip


def _kill_in_the_middle(settings, tmp_path, *, task: str, queue: str, done,  # type: ignore[no-untyped-def]
                        table: str | None = None, smtp: Inbox | None = None,
                        env: dict[str, str] | None = None) -> str:  # fmt: skip
    """Send ``task``; SIGKILL the worker while the task waits in the middle of its work (on
    a lock of ``table`` it needs, or on the SMTP server before it takes the recipient); a
    new worker gets the task again and ``done()`` comes true. Returns both workers' log."""
    from tests.celery_worker import Worker, broker_env, wait_until
    from tests.gunicorn_server import database_url

    url = database_url(settings.DATABASES)
    worker_env = broker_env(BROKER, url, **(env or {}))
    log = tmp_path / "worker.log"
    first, second = Worker(worker_env, queue, log), Worker(worker_env, queue, log)
    holder = _lock(url, table) if table else None
    if smtp is not None:
        smtp.hold.clear()
    try:
        first.start()
        _sender().send_task(task, queue=queue)
        if holder is not None:
            wait_until(f"{task} to reach {table}", lambda: _waiting_on(holder, table))
        if smtp is not None:
            wait_until(f"{task} to reach the SMTP server", smtp.waiting.is_set)
        first.kill()  # SIGKILL: no chance to clean up or acknowledge
        if holder is not None:
            holder.rollback()  # the dead worker's transaction aborts; nothing of it is kept
        if smtp is not None:
            smtp.hold.set()
        second.start()
        try:
            wait_until(f"{task} redelivered and done", done, timeout_s=90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the workers said:\n{log.read_text()[-4000:]}") from None
    finally:
        if holder is not None:
            holder.close()
        first.stop()
        second.stop()
    return log.read_text()


class Inbox:
    """An SMTP server (aiosmtpd) that can hold a conversation at RCPT: the report has been
    built and the connection opened, nothing accepted yet."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.hold = threading.Event()
        self.hold.set()
        self.waiting = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        if not self.hold.is_set():
            self.waiting.set()
            await asyncio.get_running_loop().run_in_executor(None, self.hold.wait)
            return "421 4.3.0 the client went away"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(envelope.content)
        return "250 OK"


def _ledger_rows():  # type: ignore[no-untyped-def]
    from finops.costing.models import LedgerDay, LedgerEntry

    lines = sorted(LedgerEntry.objects.values_list(
        "window_start", "bucket", "team_id", "job_id", "gpu_id", "component", "amount",
        "quantity", "activity"))  # fmt: skip
    days = sorted(LedgerDay.objects.values_list(
        "day", "basis", "bucket", "team_id", "node_id", "component", "amount", "quantity"))  # fmt: skip
    return lines, days


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_in_a_ledger_day_leaves_the_clean_runs_ledger(
    settings, tmp_path, gpu_catalog, team_a, team_b
):
    from finops.costing.engine import ledger_recompute
    from finops.costing.models import DirtyWindow, LedgerDay, LedgerEntry
    from tests.costing import scenario

    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    clean = _ledger_rows()
    assert clean[0]
    # Gone, and marked dirty: the costing task must rebuild it.
    LedgerEntry.objects.all().delete()
    LedgerDay.objects.all().delete()
    DirtyWindow.objects.bulk_create([DirtyWindow(window_start=scenario.T10),
                                     DirtyWindow(window_start=scenario.T11)])  # fmt: skip
    log = _kill_in_the_middle(
        settings, tmp_path, task="finops.costing.tasks.recompute_recent", queue="costing",
        table="costing_outputday",
        done=lambda: not DirtyWindow.objects.exists() and LedgerEntry.objects.exists(),
    )  # fmt: skip
    assert log.count("finops.costing.tasks.recompute_recent") >= 2, log  # received twice
    assert _ledger_rows() == clean


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_in_a_detector_run_duplicates_no_finding(
    settings, tmp_path, gpu_catalog, team_a
):
    from django.utils import timezone

    from finops.costing.engine import ledger_recompute
    from finops.insights.models import Finding
    from finops.insights.services import findings_refresh
    from finops.telemetry.models import GpuHour
    from tests.insights.test_detectors import node

    # Two GPUs paid for the last three hours, one of them held by a job: 50% idle.
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    g0, g1 = node("idle-1", 2)
    for h in range(1, 4):
        for g in (g0, g1):
            GpuHour.objects.create(gpu=g, ts=end - timedelta(hours=h), covered_s=3600,
                                   busy_s=3600 if g == g0 else 0, samples=3600)  # fmt: skip
    from finops.jobs.services import AllocationIn, job_record

    job_record(source="farm", external_id="long", team=team_a, status="succeeded",
               started_at=end - timedelta(hours=3), finished_at=end,
               allocations=[AllocationIn(uuid=g0.uuid, start=end - timedelta(hours=3), end=end)])  # fmt: skip
    ledger_recompute(start=end - timedelta(hours=3), end=end)
    findings_refresh(start=end - timedelta(hours=24), end=end)
    clean = sorted(Finding.objects.values_list("pattern", "dedup_key", "waste", "status"))
    assert clean
    Finding.objects.all().delete()
    log = _kill_in_the_middle(
        settings, tmp_path, task="finops.insights.tasks.detect_last_day", queue="insights",
        table="insights_finding", done=lambda: Finding.objects.exists(),
    )  # fmt: skip
    assert log.count("finops.insights.tasks.detect_last_day") >= 2, log
    assert sorted(Finding.objects.values_list("pattern", "dedup_key", "waste", "status")) == clean


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_in_a_report_send_sends_it_once(
    settings, tmp_path, gpu_catalog, team_a, root
):
    from aiosmtpd.controller import Controller
    from django.utils import timezone

    from finops.reports.models import ReportRun, ReportSubscription
    from tests.gunicorn_server import free_port

    subscription = ReportSubscription.objects.create(user=root, email="cfo@studio-a.example",
                                                     team=team_a, weekday=0, hour=0)  # fmt: skip
    ReportSubscription.objects.filter(pk=subscription.pk).update(
        created_at=timezone.now() - timedelta(days=30)
    )
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        _kill_in_the_middle(
            settings, tmp_path, task="finops.reports.tasks.send_due", queue="reports",
            smtp=inbox, env={"EMAIL_URL": f"smtp://127.0.0.1:{port}",
                             "REPORTS_PROVISIONAL_DELAY_S": "0"},
            done=lambda: ReportRun.objects.filter(status="sent").exists(),
        )  # fmt: skip
        time.sleep(2)  # a second delivery, were there one, would have arrived by now
    finally:
        controller.stop()
    (run,) = ReportRun.objects.all()
    assert run.status == "sent" and run.attempts == 1
    assert len(inbox.messages) == 1
    assert b"cfo@studio-a.example" in inbox.messages[0]


# --- the broker restarted under load ------------------------------------------------------


class PrivateRedis:
    """redis-server on a free loopback port, its queue kept across restarts (appendonly,
    fsync always: how a Redis that brokers Celery must run, docs/operations.md)."""

    def __init__(self, directory) -> None:  # type: ignore[no-untyped-def]
        from tests.gunicorn_server import free_port

        self.directory, self.port = directory, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        from tests.celery_worker import wait_until

        self.process = subprocess.Popen(  # noqa: S603
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),  # noqa: S607
             "--dir", str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until("redis", lambda: _pings(redis.Redis.from_url(self.url)), timeout_s=20)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=20)


def _pings(client) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(client.ping())
    except Exception:
        return False


@pytest.mark.django_db(transaction=True)
def test_the_broker_restarted_under_load_loses_no_task(
    settings, tmp_path, gpu_catalog, team_a, team_b
):
    from celery import Celery

    from finops.costing.engine import ledger_recompute
    from finops.costing.models import DirtyWindow
    from tests.celery_worker import Worker, wait_until
    from tests.costing import scenario
    from tests.gunicorn_server import database_url

    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    clean = _ledger_rows()
    broker = PrivateRedis(tmp_path)
    broker.start()
    env = {"DATABASE_URL": database_url(settings.DATABASES), "CELERY_BROKER_URL": broker.url,
           "CELERY_TASK_ALWAYS_EAGER": "0", "CELERY_VISIBILITY_TIMEOUT_S": "3"}  # fmt: skip
    worker = Worker(env, "costing", tmp_path / "worker.log")
    sender = Celery("fault-test", broker=broker.url)
    sender.conf.broker_transport_options = {"visibility_timeout": 3}
    sender.conf.task_publish_retry_policy = {"max_retries": 30, "interval_start": 0.5,
                                             "interval_step": 0.5, "interval_max": 1}  # fmt: skip
    sent: list[str] = []
    try:
        worker.start()
        for i in range(40):
            if i % 4 == 0:  # every task finds the scenario's hours dirty again
                DirtyWindow.objects.get_or_create(window_start=scenario.T10)
            if i == 20:
                broker.stop()  # the broker goes away with tasks queued and one running
                threading.Timer(2.0, broker.start).start()  # and comes back two seconds later
            sent.append(sender.send_task("finops.costing.tasks.recompute_recent",
                                         queue="costing", retry=True).id)  # fmt: skip
        log = tmp_path / "worker.log"
        wait_until("every task to run", lambda: all(
            f"[{task_id}] succeeded" in log.read_text() for task_id in sent), timeout_s=120)  # fmt: skip
    finally:
        worker.stop()
        broker.stop()
    text = (tmp_path / "worker.log").read_text()
    assert not [t for t in sent if f"[{t}] succeeded" not in text], "tasks lost"
    # Run twice or not, nothing shows it: the ledger is the clean run's, nothing doubled.
    wait_until("dirty hours recomputed", lambda: not DirtyWindow.objects.exists())
    assert _ledger_rows() == clean
