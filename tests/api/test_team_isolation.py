"""Every endpoint that returns team data, read with a key restricted to studio-a and with
one restricted to studio-b, over the hand-checked scenario: each sees its own team only,
and another team's data is a 404, never an empty 200 or a leak."""

from __future__ import annotations

import csv
import io
import json

import pytest

from finops.costing.engine import ledger_recompute
from finops.jobs.models import RenderJob
from tests.costing import scenario

pytestmark = pytest.mark.django_db

WINDOW = "2026-11-02T10:00:00Z,2026-11-02T12:00:00Z"
FOCUS = {"start": "2026-11-02T10:00:00Z", "end": "2026-11-02T12:00:00Z"}


@pytest.fixture
def as_team(api, make_key, team_a, team_b):  # type: ignore[no-untyped-def]
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    keys = {team.slug: make_key("billing:read", "read", team=team) for team in (team_a, team_b)}

    def client(slug: str):  # type: ignore[no-untyped-def]
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {keys[slug]}")
        return api

    return client


@pytest.mark.parametrize(("mine", "theirs"), [("studio-a", "studio-b"), ("studio-b", "studio-a")])
def test_allocation_by_every_aggregate(as_team, mine, theirs):
    api = as_team(mine)
    for aggregate in ("team", "project", "model", "job", "node", "gpu_model"):
        body = api.get("/api/v1/allocation", {"window": WINDOW, "aggregate": aggregate}).json()
        names = {r["name"] for r in body["steps"][0]["rows"]}
        assert "__idle__" not in names and "__unallocated__" not in names, aggregate
        if aggregate == "team":
            assert names == {mine}
        if aggregate == "job":
            owned = {
                f"{j.source}:{j.external_id}" for j in RenderJob.objects.filter(team__slug=mine)
            }
            assert names <= owned | {"__none__"}
    assert api.get("/api/v1/allocation", {"window": WINDOW, "team": theirs}).status_code == 404


@pytest.mark.parametrize(("mine", "theirs"), [("studio-a", "studio-b"), ("studio-b", "studio-a")])
def test_jobs_list_and_detail(as_team, mine, theirs):
    api = as_team(mine)
    listed = api.get("/api/v1/jobs").json()["results"]
    assert listed and {j["team"] for j in listed} == {mine}
    assert api.get("/api/v1/jobs", {"team": theirs}).status_code == 404
    other = RenderJob.objects.filter(team__slug=theirs).first()
    assert api.get(f"/api/v1/jobs/{other.source}/{other.external_id}").status_code == 404


@pytest.mark.parametrize(("mine", "theirs"), [("studio-a", "studio-b"), ("studio-b", "studio-a")])
def test_invoice(as_team, mine, theirs):
    api = as_team(mine)
    assert api.get(f"/api/v1/teams/{mine}/invoice", {"period": "2026-11"}).json()["team"] == mine
    assert api.get(f"/api/v1/teams/{theirs}/invoice", {"period": "2026-11"}).status_code == 404
    as_csv = api.get(f"/api/v1/teams/{theirs}/invoice", {"period": "2026-11", "format": "csv"})
    assert as_csv.status_code == 404


@pytest.mark.parametrize(("mine", "theirs"), [("studio-a", "studio-b"), ("studio-b", "studio-a")])
def test_focus_export_csv_json_and_parquet(as_team, mine, theirs):
    api = as_team(mine)
    rows = list(csv.DictReader(io.StringIO(b"".join(
        api.get("/api/v1/export/focus", {**FOCUS, "format": "csv"}).streaming_content
    ).decode())))  # fmt: skip
    assert rows
    assert {r["BillingAccountId"] for r in rows} == {mine}
    assert all(json.loads(r["Tags"])["team"] == mine for r in rows)
    as_json = json.loads(b"".join(
        api.get("/api/v1/export/focus", {**FOCUS, "format": "json"}).streaming_content
    ))  # fmt: skip
    assert as_json and {r["BillingAccountId"] for r in as_json} == {mine}
    assert theirs not in json.dumps(as_json)
    import pyarrow.parquet as pq

    as_parquet = pq.read_table(
        io.BytesIO(api.get("/api/v1/export/focus", {**FOCUS, "format": "parquet"}).content)
    ).to_pylist()
    assert len(as_parquet) == len(rows)
    assert {r["BillingAccountId"] for r in as_parquet} == {mine}
    assert {r["InvoiceId"] for r in as_parquet} == {f"FO-{mine}-2026-11"}
    assert theirs not in json.dumps(as_parquet, default=str)


def test_an_unrestricted_billing_key_sees_every_team_and_the_fleet(api, make_key, team_a, team_b):
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('billing:read')}")
    rows = list(csv.DictReader(io.StringIO(b"".join(
        api.get("/api/v1/export/focus", {**FOCUS, "format": "csv"}).streaming_content
    ).decode())))  # fmt: skip
    assert {r["BillingAccountId"] for r in rows} == {
        "studio-a",
        "studio-b",
        "__idle__",
        "__unallocated__",
    }
