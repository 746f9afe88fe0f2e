"""Daily FOCUS files: a day written once it is complete and its ledger clean, not again
while nothing changed, again as the next version when its ledger is recomputed (the
manifest says which superseded which); the manifest's sums equal the allocation API's for
the day; the Parquet file is the one the checksum names; the command and its errors."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from finops.costing.engine import ledger_recompute
from finops.costing.focus_files import focus_day_export, focus_exports_due
from finops.costing.models import DirtyWindow, FocusExport
from finops.jobs.models import RenderJob
from tests.costing import scenario

DAY = date(2026, 11, 2)
NEXT_MORNING = datetime(2026, 11, 3, 2, tzinfo=UTC)
WINDOW = "2026-11-02T00:00:00Z,2026-11-03T00:00:00Z"


@pytest.fixture
def out(tmp_path):  # type: ignore[no-untyped-def]
    with override_settings(FOCUS_EXPORT_DIR=str(tmp_path), FOCUS_EXPORT_FORMATS=("parquet", "csv")):
        yield tmp_path


def _manifest(path):  # type: ignore[no-untyped-def]
    return json.loads((path / "manifest.json").read_text())


def test_a_day_is_written_once_then_again_when_its_ledger_changes(billing, out):
    # Not before the day has ended and settled; not while an hour waits for a recompute.
    early = focus_day_export(DAY, now=datetime(2026, 11, 2, 23, tzinfo=UTC))
    assert not early.written and early.export is None and "not complete" in early.reason
    DirtyWindow.objects.create(window_start=scenario.T10)
    dirty = focus_day_export(DAY, now=NEXT_MORNING)
    assert not dirty.written and "waiting for the ledger's recompute" in dirty.reason
    DirtyWindow.objects.all().delete()

    first = focus_day_export(DAY, now=NEXT_MORNING)
    assert first.written and first.export.version == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "focus-2026-11-02-v1.csv", "focus-2026-11-02-v1.parquet", "manifest.json",
    ]  # fmt: skip
    again = focus_day_export(DAY, now=NEXT_MORNING)
    assert not again.written and again.export.pk == first.export.pk
    assert FocusExport.objects.count() == 1

    # The manifest's sums are the allocation API's for the day, and its checksum the file's.
    (entry,) = _manifest(out)["files"]
    body = billing.get("/api/v1/allocation", {"window": WINDOW, "aggregate": "team"}).json()
    total = sum(Decimal(r["total_cost"]) for r in body["steps"][0]["rows"])
    assert Decimal(entry["billed_cost"]) == total == Decimal("24")
    assert entry["rows"] == 12 and entry["current"] is True and entry["supersedes"] is None
    data = (out / entry["files"]["parquet"]["name"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["files"]["parquet"]["sha256"]
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == 12 and sum(table.column("BilledCost").to_pylist()) == total

    # A late change to the day: recomputed, so written again as version 2.
    RenderJob.objects.filter(external_id="J4").update(project="launch")
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    second = focus_day_export(DAY, now=NEXT_MORNING)
    assert second.written and second.export.version == 2
    first.export.refresh_from_db()
    assert first.export.superseded_by_id == second.export.pk
    v1, v2 = _manifest(out)["files"]
    assert (v1["version"], v1["current"], v2["version"], v2["current"]) == (1, False, 2, True)
    assert v1["superseded_by"]["parquet"]["name"] == "focus-2026-11-02-v2.parquet"
    assert v2["supersedes"]["parquet"]["name"] == "focus-2026-11-02-v1.parquet"
    assert (out / "focus-2026-11-02-v1.parquet").exists()  # kept: finance may have loaded it
    assert Decimal(v2["billed_cost"]) == total


def test_the_beat_and_the_command(billing, out):
    results = focus_exports_due(now=NEXT_MORNING)
    assert [(r.day, r.written) for r in results if r.written] == [(DAY, True)]
    assert all(r.export is None for r in results if r.day != DAY)  # no ledger, no file
    written = io.StringIO()
    call_command("export_focus", "--day", "2026-11-02", stdout=written)
    assert "version 1 is current" in written.getvalue()
    with pytest.raises(CommandError, match="not a day as YYYY-MM-DD"):
        call_command("export_focus", "--day", "yesterday")
    with pytest.raises(CommandError, match="unknown xml"):
        call_command("export_focus", "--day", "2026-11-02", "--formats", "xml")


@override_settings(FOCUS_EXPORT_DIR="")
def test_nothing_is_written_without_a_directory(billing):
    assert focus_exports_due(now=NEXT_MORNING) == []
    with pytest.raises(CommandError, match="FOCUS_EXPORT_DIR is not set"):
        call_command("export_focus", "--day", "2026-11-02")
