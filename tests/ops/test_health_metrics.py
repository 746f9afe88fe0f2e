from __future__ import annotations

import pytest
from django.db import DatabaseError
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_health_is_200_when_database_answers(client):
    response = client.get("/health/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    database = body["database"]
    assert (database["ok"], database["vendor"]) == (True, "postgresql")
    assert isinstance(database["latency_ms"], float)
    assert 0 < database["latency_ms"] < 5000  # one round trip to the local database


def test_health_is_503_json_when_database_fails(client, monkeypatch):
    from django.db.backends.utils import CursorWrapper

    def broken(self, sql, params=None):  # type: ignore[no-untyped-def]
        raise DatabaseError("connection refused")

    monkeypatch.setattr(CursorWrapper, "execute", broken)
    response = client.get("/health/")
    assert response.status_code == 503
    assert response.json()["database"] == {"ok": False, "error": "connection refused"}


def test_metrics_counts_requests_by_route(client, make_key):
    key = make_key("read")
    client.get("/api/v1/teams/nobody", HTTP_AUTHORIZATION=f"Bearer {key}")
    text = client.get("/metrics").content.decode()
    assert "# TYPE frameops_http_requests_total counter" in text
    line = next(
        ln
        for ln in text.splitlines()
        if ln.startswith("frameops_http_requests_total{")
        and 'route="/api/v1/teams/<slug:slug>"' in ln
        and 'status="404"' in ln
    )
    assert float(line.rsplit(" ", 1)[1]) >= 1


def test_metrics_counts_celery_tasks(client):
    from finops.telemetry.tasks import purge_raw_samples

    purge_raw_samples.delay()  # eager in tests: runs here, through Celery's signals
    text = client.get("/metrics").content.decode()
    assert any(
        ln.startswith("frameops_celery_tasks_total{")
        and 'task="finops.telemetry.tasks.purge_raw_samples"' in ln
        and 'outcome="success"' in ln
        for ln in text.splitlines()
    )


@override_settings(METRICS_TOKEN="s3cret-token")
def test_metrics_token_is_enforced_when_set(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
