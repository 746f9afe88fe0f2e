"""Generated API tests: schemathesis reads FrameOps' own OpenAPI schema from a live server
on loopback and sends at least a thousand generated requests over every operation, with a
key of every scope, a team-restricted key and a key with one scope; every response must
not be a server error, must have a documented status code, and must match its schema."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from finops.accounts.services import api_key_create
from finops.fleet.models import Gpu, Node, Site
from finops.jobs.models import JobStatus
from finops.jobs.services import AllocationIn, job_record

CHECKS = "not_a_server_error,status_code_conformance,response_schema_conformance"
MIN_CASES = 1000


def _schemathesis() -> str:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail("schemathesis is a dev dependency: `make test` installs it")
    return found


def _run(
    server_url: str, key: str, *, max_examples: int, phases: str, tmp_path: Path
) -> tuple[int, str]:
    out = subprocess.run(  # noqa: S603
        [_schemathesis(), "run", f"{server_url}/api/schema/", "-H", f"Authorization: Bearer {key}",
         "-H", "Accept: application/json", "--checks", CHECKS, "--max-examples", str(max_examples),
         "--phases", phases, "--workers", "1", "--seed", "20261201", "--no-color",
         "--request-timeout", "30"],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
    )  # fmt: skip
    text = out.stdout + out.stderr
    match = re.search(r"(\d+) generated", text)
    return (int(match.group(1)) if match else 0), text if out.returncode == 0 else "FAILED\n" + text


@pytest.fixture
def fleet(team_a, team_b):  # type: ignore[no-untyped-def]
    """A node, a GPU and a finished job, so operations reach their logic."""
    node = Node.objects.create(
        site=Site.objects.create(slug="lab", provider="on-prem"), hostname="lab-1"
    )
    Gpu.objects.create(node=node, uuid="GPU-0", index=0)
    start = datetime.now(UTC) - timedelta(hours=2)
    job_record(source="farm", external_id="j1", team=team_a, status=JobStatus.SUCCEEDED,
               started_at=start, finished_at=start + timedelta(minutes=30),
               allocations=[AllocationIn(uuid="GPU-0", start=start, end=start + timedelta(minutes=30))])  # fmt: skip
    return team_a


@pytest.mark.django_db(transaction=True)
def test_generated_requests_over_every_operation(server, settings, fleet, tmp_path, capsys):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"burst": "1000000/min", "sustained": "10000000/day"},
    }
    _, everything = api_key_create(
        name="all scopes", scopes=["ingest:write", "billing:read", "read"]
    )
    _, restricted = api_key_create(
        name="studio-a", scopes=["ingest:write", "billing:read", "read"], team=fleet
    )
    _, ingest_only = api_key_create(name="ingest only", scopes=["ingest:write"])
    runs = [
        ("every scope", everything, 12, "examples,coverage,fuzzing"),
        ("team-restricted", restricted, 8, "fuzzing"),
        ("ingest:write only", ingest_only, 3, "fuzzing"),
    ]
    total, reports = 0, []
    for name, key, examples, phases in runs:
        cases, report = _run(
            server.url, key, max_examples=examples, phases=phases, tmp_path=tmp_path
        )
        total += cases
        reports.append((name, cases, report))
    with capsys.disabled():
        print(f"\nschemathesis: {total} generated cases: "
              + ", ".join(f"{name} {cases}" for name, cases, _ in reports))  # fmt: skip
    failed = [
        f"--- {name}\n{report[-6000:]}"
        for name, _, report in reports
        if report.startswith("FAILED")
    ]
    assert not failed, "\n".join(failed)
    assert total >= MIN_CASES
