"""A ledger recompute spread over Celery workers, a task per UTC day on the costing queue:
with two real worker processes on the local Redis it gives the ledger one process gives,
also when a worker is killed (SIGKILL) in the middle of a day; and the beat hands many
dirty days out the same way."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from finops.costing.engine import ledger_recompute
from finops.costing.fanout import recompute_fan_out, run_progress
from finops.costing.models import (
    DirtyWindow,
    LedgerDay,
    LedgerEntry,
    RecomputeRun,
    RecomputeRunDay,
)
from finops.simulation.studio import studio_simulate
from tests.celery_worker import Worker, broker_env, wait_until
from tests.gunicorn_server import database_url
from tests.ops.test_faults import BROKER, _lock, _waiting_on

DAYS = 3


def _ledger_rows() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    lines = LedgerEntry.objects.values_list(
        "window_start", "bucket", "team_id", "job_id", "gpu_id", "component", "amount",
        "quantity", "activity",
    )  # fmt: skip
    days = LedgerDay.objects.values_list(
        "day", "basis", "bucket", "team_id", "node_id", "component", "amount", "quantity"
    )
    return sorted(lines, key=repr), sorted(days, key=repr)


@pytest.fixture
def real_broker() -> Iterator[None]:
    """This process sends tasks to the Redis the workers read (the suite's default is an
    in-memory broker that runs tasks at once)."""
    from finops.celery import app

    def fresh_connections() -> None:
        # Forget the pools (kombu shares them by broker URL with other apps: closing them
        # would close another test's), so the next send connects to the broker set now.
        app._pool = None
        app.amqp._producer_pool = None

    saved = app.conf.broker_url, app.conf.task_always_eager, app.conf.broker_transport_options
    app.conf.broker_url, app.conf.task_always_eager = BROKER, False
    app.conf.broker_transport_options = {"visibility_timeout": 3}
    fresh_connections()
    yield
    app.conf.broker_url, app.conf.task_always_eager, app.conf.broker_transport_options = saved
    fresh_connections()


@pytest.mark.django_db(transaction=True)
def test_days_over_two_workers_equal_one_process_also_with_a_worker_killed(
    settings, tmp_path, gpu_catalog, real_broker
):
    end = (timezone.now() - timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    studio_simulate(days=DAYS, gpus=64, seed=13, end=end)
    start = end - timedelta(days=DAYS)
    ledger_recompute(start=start, end=end)
    one_process = _ledger_rows()
    assert one_process[0]

    url = database_url(settings.DATABASES)
    env = broker_env(BROKER, url)
    log = tmp_path / "workers.log"
    workers = [Worker(env, "costing", log) for _ in range(3)]
    try:
        # Two workers share the days; the command follows their progress.
        LedgerEntry.objects.all().delete()
        LedgerDay.objects.all().delete()
        workers[0].start()
        workers[1].start()
        out, err = io.StringIO(), io.StringIO()
        call_command("recompute_costs", f"--from={start.isoformat()}", f"--to={end.isoformat()}",
                     "--via-celery", "--no-rollups", "--timeout=180", stdout=out, stderr=err)  # fmt: skip
        assert f"{DAYS}/{DAYS} days done" in err.getvalue(), err.getvalue()
        assert "over Celery workers" in out.getvalue()
        assert _ledger_rows() == one_process
        workers[1].stop()

        # A worker killed while a day waits in its transaction: the day goes to another.
        LedgerEntry.objects.all().delete()
        LedgerDay.objects.all().delete()
        holder = _lock(url, "costing_outputday")
        try:
            run = recompute_fan_out(
                chunks=[(start + timedelta(days=d), start + timedelta(days=d + 1)) for d in range(DAYS)],
                reason="command",
            )  # fmt: skip
            wait_until(
                "a day to wait on the lock", lambda: _waiting_on(holder, "costing_outputday")
            )
            workers[0].kill()
        finally:
            holder.rollback()
            holder.close()
        workers[2].start()
        wait_until("every day done", lambda: run_progress(run) == (DAYS, DAYS), timeout_s=120)
        assert _ledger_rows() == one_process
        assert set(RecomputeRunDay.objects.filter(run=run).values_list("entries", flat=True)) != {
            None
        }
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nworkers said:\n{log.read_text()[-4000:]}") from None
    finally:
        for worker in workers:
            worker.stop()


@pytest.mark.django_db
def test_the_beat_hands_many_dirty_days_out_once(
    settings, gpu_catalog, team_a, team_b, django_capture_on_commit_callbacks
):
    """With the suite's in-memory broker the day tasks run as they are sent: the beat's
    task sends each dirty day once, and a day already handed out is not sent again."""
    from finops.costing.tasks import recompute_recent
    from tests.costing import scenario

    scenario.build(team_a, team_b)
    settings.COSTING_FANOUT_MIN_DAYS = 2
    days = [scenario.T10 - timedelta(days=d) for d in range(3)]
    DirtyWindow.objects.bulk_create(
        (DirtyWindow(window_start=d) for d in days), ignore_conflicts=True
    )
    with django_capture_on_commit_callbacks(execute=True):  # the days are sent on commit
        counts = recompute_recent()
    assert counts["dirty_days_sent"] == 3
    assert not DirtyWindow.objects.exists()
    run = RecomputeRun.objects.get()
    assert run.reason == "dirty-windows" and run_progress(run) == (3, 3)
    assert LedgerEntry.objects.filter(window_start=scenario.T10).exists()

    # Below the threshold the beat recomputes in its own task, as before.
    DirtyWindow.objects.create(window_start=scenario.T11)
    assert recompute_recent()["dirty_windows"] == 1
    assert RecomputeRun.objects.count() == 1

    # A day handed out and not done yet (a worker busy with it) is not sent again.
    day = days[1].replace(hour=0)
    busy = RecomputeRun.objects.create(
        start=day, end=day + timedelta(days=1), reason="dirty-windows"
    )
    RecomputeRunDay.objects.create(run=busy, start=day, end=day + timedelta(days=1))
    DirtyWindow.objects.bulk_create([DirtyWindow(window_start=days[1]),
                                     DirtyWindow(window_start=days[2])])  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        assert recompute_recent()["dirty_days_sent"] == 1
    assert DirtyWindow.objects.get().window_start == days[1]
