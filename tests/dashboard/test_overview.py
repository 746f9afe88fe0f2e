"""The dashboard pages through Django's test client: sign-in, the same roles as the API,
bad input named on the page, empty states that say what to do (the pages in a real
browser: test_browser.py)."""

from __future__ import annotations

import pytest

from finops.costing.engine import ledger_recompute
from tests.costing import scenario

WINDOW = "2026-11-02T10:00:00Z,2026-11-02T12:00:00Z"


@pytest.mark.django_db
def test_sign_in_is_required(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_a_viewer_sees_only_their_teams(client, team_a, team_b, bob):
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    client.force_login(bob)  # a viewer of studio-b
    page = client.get("/", {"window": WINDOW}).content.decode()
    assert "studio-b" in page and "studio-a" not in page
    assert "__idle__" not in page  # fleet rows only for callers who see every team
    assert ">4.00<" in page  # studio-b's $4.00 in the team table


@pytest.mark.django_db
def test_a_bad_window_is_named_on_the_page(client, alice):
    client.force_login(alice)
    response = client.get("/", {"window": "1000000d"})
    assert response.status_code == 400
    assert "window:" in response.content.decode()


@pytest.mark.django_db
def test_an_empty_studio_says_what_to_do(client, alice):
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "No cost in this window yet" in page and "simulate_studio" in page


@pytest.mark.django_db
def test_findings_page_judges_with_csrf_and_roles(client, team_a, team_b, alice, bob):
    from datetime import UTC, datetime, timedelta

    from finops.insights.models import Finding

    now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)  # inside the default 30 days
    mine = Finding.objects.create(pattern="regeneration_waste", scope_kind="team", scope_key="studio-a",
                                  team=team_a, window_start=now - timedelta(hours=1), window_end=now,
                                  est_monthly_waste=120, waste=1, dedup_key="a", first_seen_at=now,
                                  last_seen_at=now, recommendation="Preview drafts.")  # fmt: skip
    theirs = Finding.objects.create(pattern="regeneration_waste", scope_kind="team", scope_key="studio-b",
                                    team=team_b, window_start=now - timedelta(hours=1), window_end=now,
                                    dedup_key="b", first_seen_at=now, last_seen_at=now)  # fmt: skip
    client.force_login(alice)  # manager of studio-a
    page = client.get("/findings/").content.decode()
    assert "studio-a" in page and "studio-b" not in page and ">Acknowledge</button>" in page
    assert client.post(f"/findings/{theirs.pk}/judge", {"status": "resolved"}).status_code == 404
    assert client.post(f"/findings/{mine.pk}/judge", {"status": "sloth"}).status_code == 400
    assert client.post(f"/findings/{mine.pk}/judge", {"status": "acknowledged"}).status_code == 302
    mine.refresh_from_db()
    assert mine.status == "acknowledged"
    csv_text = client.get(
        "/findings/", {"status": "acknowledged", "format": "csv"}
    ).content.decode()
    assert "studio-a" in csv_text and "studio-b" not in csv_text
    client.force_login(bob)  # a viewer of studio-b: sees, may not judge
    assert ">Acknowledge</button>" not in client.get("/findings/").content.decode()
    assert client.post(f"/findings/{theirs.pk}/judge", {"status": "resolved"}).status_code == 403


@pytest.mark.django_db
def test_planner_page_uses_the_planner_and_names_bad_fields(client, alice):
    client.force_login(alice)
    page = client.get(
        "/planner/", {"shape": "wan-14b", "height": "720", "width": "1280"}
    ).content.decode()
    assert "H200" in page and "L4" in page and "plan-chart" in page
    bad = client.get("/planner/", {"frames": "lots", "regen_rate": "2"})
    assert bad.status_code == 400
    assert "frames: &#x27;lots&#x27; is not a number" in bad.content.decode()
    assert "regen_rate: must be between" in bad.content.decode()


@pytest.mark.django_db
def test_the_fleet_page_is_for_callers_who_see_every_team(client, alice, team_b, root):
    client.force_login(alice)
    assert client.get("/fleet/").status_code == 403
    client.force_login(root)
    page = client.get("/fleet/").content.decode()
    assert "No GPU telemetry in this window" in page
    assert client.get("/fleet/", {"window": "sloth"}).status_code == 400


@pytest.mark.django_db
def test_the_team_page_shows_its_clips_and_jobs_and_404s_another_team(
    client, team_a, team_b, alice
):
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    client.force_login(alice)  # manager of studio-a
    page = client.get("/teams/studio-a/", {"window": WINDOW}).content.decode()
    assert "team-chart" in page and 'id="clips"' in page and 'id="jobs"' in page
    assert "c1" in page  # the clip rendered twice (J1 unusable, J4 usable)
    assert client.get("/teams/studio-b/").status_code == 404
    assert client.get("/teams/studio-a/", {"window": "sloth"}).status_code == 400


@pytest.mark.django_db
def test_the_findings_page_runs_no_query_per_finding(
    client, team_a, alice, django_assert_max_num_queries
):
    from datetime import UTC, datetime, timedelta

    from finops.insights.models import Finding

    now = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)  # inside the default 30 days
    client.force_login(alice)

    def make(n: int) -> None:
        Finding.objects.all().delete()
        Finding.objects.bulk_create(
            Finding(pattern="idle_capacity", scope_kind="team", scope_key=f"k{i}", team=team_a,
                    window_start=now - timedelta(hours=1), window_end=now, dedup_key=f"k{i}",
                    first_seen_at=now, last_seen_at=now)
            for i in range(n)
        )  # fmt: skip

    make(2)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get("/findings/")
    make(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get("/findings/").content.decode()
    assert page.count('section class="finding"') == 30


@pytest.mark.django_db
def test_the_window_picker_names_its_fields(client, alice):
    client.force_login(alice)
    for params, message in (
        ({"window": "custom", "to": "2026-11-02"}, "from: pick a date"),
        ({"window": "custom", "from": "2026-11-31", "to": "2026-12-01"}, "from: &#x27;2026-11-31&#x27; is not a date"),
        ({"window": "custom", "from": "2026-11-05", "to": "2026-11-01"}, "to: must not be before from"),
        ({"window": "custom", "from": "2020-01-01", "to": "2026-11-01"}, "window: is longer than 366 days"),
        ({"window": "fortnight"}, "window: &#x27;fortnight&#x27;: use 24h, 7d, 30d"),
    ):  # fmt: skip
        response = client.get("/", params)
        assert response.status_code == 400, params
        assert message in response.content.decode(), (params, message)
    for window in ("24h", "7d", "30d", "monthtodate", "lastmonth"):
        assert client.get("/", {"window": window}).status_code == 200, window
    page = client.get("/", {"window": "custom", "from": "2026-11-01", "to": "2026-11-02"})
    assert "2026-11-01 00:00 \N{EN DASH} 2026-11-03 00:00 UTC" in page.content.decode()


@pytest.mark.django_db
def test_every_table_downloads_as_csv_of_the_same_rows(client, team_a, team_b, alice):
    import csv
    import io

    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    client.force_login(alice)
    response = client.get("/", {"window": WINDOW, "format": "csv", "table": "teams"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(r["team"], r["total_cost"]) for r in rows] == [("studio-a", "7.50")]
    jobs = client.get("/teams/studio-a/", {"window": WINDOW, "format": "csv", "table": "jobs"})
    ids = {r["job"] for r in csv.DictReader(io.StringIO(jobs.content.decode()))}
    assert ids == {"farm-1:J1", "farm-1:J3", "farm-1:J4"}
    unknown = client.get("/", {"window": WINDOW, "format": "csv", "table": "sloth"})
    assert unknown.status_code == 400 and b"table: 'sloth' is not on this page" in unknown.content
    bad_status = client.get("/teams/studio-a/", {"window": WINDOW, "status": "done-ish"})
    assert (
        bad_status.status_code == 400
        and "status: &#x27;done-ish&#x27;: use" in bad_status.content.decode()
    )
    bad_by = client.get("/teams/studio-a/", {"window": WINDOW, "by": "colour"})
    assert bad_by.status_code == 400 and "by: &#x27;colour&#x27;" in bad_by.content.decode()
    by_version = client.get("/teams/studio-a/", {"window": WINDOW, "by": "model_version"})
    assert ">2.1<" in by_version.content.decode()


@pytest.mark.django_db
def test_tables_download_as_parquet_equal_to_the_csv_with_types(client, team_a, team_b, alice):
    import csv
    import io
    from datetime import UTC, datetime
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    client.force_login(alice)
    for path, table in (("/", "teams"), ("/teams/studio-a/", "jobs")):
        params = {"window": WINDOW, "table": table}
        as_csv = list(csv.DictReader(io.StringIO(
            client.get(path, {**params, "format": "csv"}).content.decode())))  # fmt: skip
        response = client.get(path, {**params, "format": "parquet"})
        assert response["Content-Type"] == "application/vnd.apache.parquet"
        parquet = pq.read_table(io.BytesIO(response.content))
        assert parquet.column_names == list(as_csv[0])
        assert parquet.num_rows == len(as_csv)
        for got, want in zip(parquet.to_pylist(), as_csv, strict=True):
            for key, text in want.items():
                value = got[key]
                if value is None:
                    assert text == "", key
                elif isinstance(value, datetime):
                    assert value.tzinfo is not None and text.startswith(
                        value.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
                    ), key
                elif isinstance(value, Decimal):
                    assert value == Decimal(text), key
                elif isinstance(value, bool):
                    assert text == str(value), key
                else:
                    assert str(value) == text or float(value) == float(text), key
        if table == "teams":
            assert parquet.schema.field("total_cost").type == pa.decimal128(38, 2)
        else:
            assert parquet.schema.field("finished").type == pa.timestamp("us", tz="UTC")


@pytest.mark.django_db
def test_the_overview_shows_budget_burn_and_forecast(client, team_a, alice):
    from datetime import UTC, datetime
    from decimal import Decimal

    from finops.costing.selectors import month_burn

    now = datetime(2026, 11, 11, 0, tzinfo=UTC)  # 10 of 30 days gone
    scenario.build(team_a, team_a)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    burn = month_burn([team_a], now=now)[team_a.pk]
    assert burn.spent == Decimal("11.50") and burn.forecast == Decimal("34.50")
    assert burn.burn == pytest.approx(11.5 / 50_000)
