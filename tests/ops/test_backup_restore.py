"""Backup and restore as docs/operations.md gives them: pg_dump of a populated database,
pg_restore into a fresh one, and the same allocation report, findings and audit trail read
back from it."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from auditlog.models import LogEntry
from django.db import connections
from rest_framework.test import APIClient

from finops.accounts.services import api_key_create, api_key_revoke
from finops.costing.engine import ledger_recompute
from finops.insights.models import Finding
from finops.insights.services import findings_refresh
from tests.costing import scenario

WINDOW = "2026-11-02T10:00:00Z,2026-11-02T12:00:00Z"


def _pg(db: dict[str, object]) -> list[str]:
    return ["-h", str(db.get("HOST") or "127.0.0.1"), "-p", str(db.get("PORT") or 5432),
            "-U", str(db.get("USER") or "root")]  # fmt: skip


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """A PostgreSQL client program (pg_dump, pg_restore, createdb, dropdb)."""
    return subprocess.run(list(args), capture_output=True, text=True, check=False)  # noqa: S603


def _what_a_reader_sees() -> dict[str, object]:
    _, key = api_key_create(name=f"reader-{uuid.uuid4().hex[:6]}", scopes=["read", "billing:read"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    allocation = api.get("/api/v1/allocation", {"window": WINDOW, "aggregate": "team,model",
                                                "step": "1h", "idle": "separate"}).json()  # fmt: skip
    findings = sorted(
        Finding.objects.values_list("dedup_key", "status", "waste", "est_monthly_waste")
    )
    audit = sorted(
        (e.content_type.model, e.object_pk, e.action, json.dumps(e.changes_dict, sort_keys=True))
        for e in LogEntry.objects.select_related("content_type")
        if e.object_repr.startswith("backup")
    )
    return {"allocation": allocation, "findings": findings, "audit": audit}


@pytest.mark.django_db(transaction=True)
def test_a_dump_restored_into_a_fresh_database_reads_the_same(
    gpu_catalog, team_a, team_b, tmp_path
):
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    findings_refresh(start=scenario.T10, end=scenario.T12, now=scenario.T12)
    assert Finding.objects.exists()
    key, _ = api_key_create(name="backup-farm", scopes=["ingest:write"])
    api_key_revoke(api_key=key)  # two audit entries to carry across
    before = _what_a_reader_sees()
    assert before["allocation"]["steps"][0]["rows"] and before["audit"]

    db = connections["default"].settings_dict
    dump = tmp_path / "frameops.dump"
    dumped = _cli("pg_dump", *_pg(db), "--format=custom", "--no-owner", f"--file={dump}",
                  str(db["NAME"]))  # fmt: skip
    assert dumped.returncode == 0, dumped.stderr
    restored = f"frameops_restore_{uuid.uuid4().hex[:8]}"
    assert _cli("createdb", *_pg(db), restored).returncode == 0
    original = db["NAME"]
    try:
        restore = _cli("pg_restore", *_pg(db), "--no-owner", "--exit-on-error",
                       f"--dbname={restored}", str(dump))  # fmt: skip
        assert restore.returncode == 0, restore.stderr
        connections["default"].close()
        db["NAME"] = restored
        after = _what_a_reader_sees()
    finally:
        connections["default"].close()
        db["NAME"] = original
        _cli("dropdb", *_pg(db), "--if-exists", restored)
    assert after == before
