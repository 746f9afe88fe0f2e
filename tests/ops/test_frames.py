"""``query_frame``: PostgreSQL's CSV COPY path gives the frame the fetched rows give, types
included (NULLs, empty text, booleans, time zones, intervals past a day)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.db import connection
from django.db.models import DurationField, ExpressionWrapper, F

from finops.jobs.models import JobStatus, RenderJob
from finops.ops.frames import query_frame

pytestmark = pytest.mark.django_db
COLUMNS = ["id", "project", "usable", "frames", "fps", "finished_at", "took", "external_id"]


def _frame(monkeypatch=None):  # type: ignore[no-untyped-def]
    rows = (
        RenderJob.objects.annotate(took=ExpressionWrapper(F("finished_at") - F("started_at"),
                                                          output_field=DurationField()))
        .values_list(*COLUMNS)
        .order_by("id")
    )  # fmt: skip
    return query_frame(rows, COLUMNS, text=["project", "external_id"], times=["finished_at"],
                       flags=["usable"], durations=["took"])  # fmt: skip


def test_the_copy_path_equals_the_fetched_rows(team_a, monkeypatch):
    t0 = datetime(2026, 11, 2, 10, 0, 0, 250_000, tzinfo=UTC)
    cases = [
        {"project": "", "usable": None, "frames": None, "fps": None, "finished_at": None},
        {"project": "p, with \"quotes\"\nand a line", "usable": True, "frames": 81, "fps": 16.0,
         "finished_at": t0 + timedelta(days=2, seconds=1.5)},
        {"project": "123", "usable": False, "frames": 0, "fps": 24.0,
         "finished_at": t0 + timedelta(seconds=30)},
    ]  # fmt: skip
    for i, case in enumerate(cases):
        RenderJob.objects.create(team=team_a, source="farm", external_id=f"j{i}",
                                 status=JobStatus.SUCCEEDED, started_at=t0, **case)  # fmt: skip
    assert connection.vendor == "postgresql"
    copied = _frame()
    monkeypatch.setattr(connection, "vendor", "sqlite")  # the fetched-rows path, same database
    fetched = _frame()
    pd.testing.assert_frame_equal(copied, fetched, check_dtype=False)
    assert copied["usable"].tolist() == [None, True, False]
    assert copied["project"].tolist() == ["", cases[1]["project"], "123"]
    assert copied["took"].tolist()[1:] == [2 * 86400 + 1.5, 30.0]
    assert copied["finished_at"].iloc[1] == pd.Timestamp(cases[1]["finished_at"])


def test_an_empty_query_has_the_columns(db):
    frame = _frame()
    assert list(frame.columns) == COLUMNS and len(frame) == 0
