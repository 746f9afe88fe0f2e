from __future__ import annotations

from finops.celery import BEAT_SCHEDULE, QUEUES, app, route_task


def test_queues_are_declared():
    assert {q.name for q in app.conf.task_queues} == set(QUEUES)
    assert set(QUEUES) == {"ingest", "costing", "insights", "notify", "reports"}


def test_tasks_are_routed_by_app():
    assert route_task("finops.telemetry.tasks.purge_raw_samples", (), {}, {}) == {"queue": "ingest"}
    assert route_task("finops.costing.tasks.recompute", (), {}, {}) == {"queue": "costing"}
    assert route_task("finops.reports.tasks.send_weekly", (), {}, {}) == {"queue": "reports"}


def test_every_schedule_names_a_registered_task_and_expires():
    app.loader.import_default_modules()
    for name, entry in BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, name
        assert entry["options"]["expires"] == entry["schedule"] * 1.5, name
