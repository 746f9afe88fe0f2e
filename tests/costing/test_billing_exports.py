from __future__ import annotations

import csv
import io
import json
from decimal import Decimal

import pandas as pd
import pytest

from finops.costing.engine import ledger_recompute
from finops.costing.exports import FOCUS_MANDATORY
from tests.costing import scenario

pytestmark = pytest.mark.django_db


def _csv(api, **params):  # type: ignore[no-untyped-def]
    response = api.get(
        "/api/v1/export/focus",
        {"start": "2026-11-02T00:00:00Z", "end": "2026-11-03T00:00:00Z", **params},
    )
    assert response.status_code == 200, response.content if not response.streaming else ""
    return response, b"".join(response.streaming_content).decode()


def test_focus_csv_has_every_mandatory_column_and_loads_in_pandas(billing):
    response, text = _csv(billing)
    assert response["Content-Type"].startswith("text/csv")
    frame = pd.read_csv(io.StringIO(text), parse_dates=["ChargePeriodStart", "ChargePeriodEnd",
                                                          "BillingPeriodStart", "BillingPeriodEnd"])  # fmt: skip
    for column in FOCUS_MANDATORY:
        assert column in frame.columns, column
    for money in (
        "BilledCost",
        "EffectiveCost",
        "ListCost",
        "ContractedCost",
        "PricingQuantity",
        "ConsumedQuantity",
    ):
        assert pd.api.types.is_float_dtype(frame[money]), money
    for when in ("ChargePeriodStart", "BillingPeriodStart"):
        assert pd.api.types.is_datetime64_any_dtype(frame[when])
    assert str(frame["ChargePeriodStart"].dt.tz) == "UTC"
    assert round(frame["BilledCost"].sum(), 6) == 24.0  # the whole paid cost, idle included
    assert set(frame["ChargeCategory"]) == {"Usage"}
    assert set(frame["BillingCurrency"]) == {"USD"}
    gpu = frame[frame["ConsumedUnit"] == "GPU-Hours"]
    assert set(gpu["ServiceCategory"]) == {"AI and Machine Learning"}
    tags = [json.loads(t) for t in frame["Tags"]]
    assert {
        "team": "studio-b",
        "project": "trailer",
        "model": "wan2.1-t2v-1.3b",
        "job": "farm-1:J2",
    } in tags
    assert frame.loc[frame["BillingAccountId"] == "studio-a", "BilledCost"].sum() == pytest.approx(
        7.5
    )


def test_focus_json_types_and_etag(billing):
    response, text = _csv(billing, format="json")
    rows = json.loads(text)
    assert all(set(FOCUS_MANDATORY) <= set(row) for row in rows)
    assert all(row["ChargeClass"] is None for row in rows)
    etag = response["ETag"]
    again = billing.get("/api/v1/export/focus", {"start": "2026-11-02T00:00:00Z", "end": "2026-11-03T00:00:00Z"},
                        HTTP_IF_NONE_MATCH=etag)  # fmt: skip
    assert again.status_code == 304
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    changed = billing.get("/api/v1/export/focus", {"start": "2026-11-02T00:00:00Z", "end": "2026-11-03T00:00:00Z"},
                          HTTP_IF_NONE_MATCH=etag)  # fmt: skip
    assert changed.status_code == 200


def test_invoice_lines_and_csv(billing):
    body = billing.get("/api/v1/teams/studio-a/invoice", {"period": "2026-11"}).json()
    assert body["total"] == "7.50"
    assert {
        (line["gpu_model"], line["component"], line["quantity"], line["total"])
        for line in body["lines"]
    } == {
        ("H100 SXM", "gpu", "2.0000", "7.50"),
    }
    csv_text = billing.get(
        "/api/v1/teams/studio-a/invoice", {"period": "2026-11", "format": "csv"}
    ).content.decode()
    assert csv_text.splitlines()[-1] == "total,,,,,,,7.50"
    assert billing.get("/api/v1/teams/studio-a/invoice", {"period": "November"}).status_code == 400


def test_team_restricted_key_gets_404_for_another_team(api, make_key, team_a, team_b):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('billing:read', team=team_a)}")
    assert api.get("/api/v1/teams/studio-b/invoice", {"period": "2026-11"}).status_code == 404
    assert api.get("/api/v1/teams/studio-a/invoice", {"period": "2026-11"}).status_code == 200


def test_focus_export_names_missing_or_bad_bounds(billing):
    missing = billing.get("/api/v1/export/focus", {"start": "2026-11-02T00:00:00Z"})
    assert missing.status_code == 400
    assert list(missing.json()["extra"]["fields"]) == ["end"]
    backwards = billing.get(
        "/api/v1/export/focus", {"start": "2026-11-03T00:00:00Z", "end": "2026-11-02T00:00:00Z"}
    )
    assert backwards.status_code == 400
    assert backwards.json()["extra"]["fields"] == {"end": ["must be after start"]}


def test_focus_parquet_reads_back_equal_to_the_csv_with_types(billing):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from finops.costing.exports import FOCUS_COLUMNS, MONEY_COLUMNS, TIME_COLUMNS

    window = {"start": "2026-11-02T00:00:00Z", "end": "2026-11-03T00:00:00Z"}
    response = billing.get("/api/v1/export/focus", {**window, "format": "parquet"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(response.content))
    assert table.column_names == list(FOCUS_COLUMNS)
    assert table.schema.field("BilledCost").type == pa.decimal128(24, 6)
    assert table.schema.field("PricingQuantity").type == pa.decimal128(26, 6)
    assert table.schema.field("ChargePeriodStart").type == pa.timestamp("ms", tz="UTC")
    assert table.schema.field("InvoiceId").type == pa.string()
    csv_text = b"".join(
        billing.get("/api/v1/export/focus", {**window, "format": "csv"}).streaming_content
    ).decode()
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(rows) == table.num_rows == 12
    for got, want in zip(table.to_pylist(), rows, strict=True):
        for column in FOCUS_COLUMNS:
            value = got[column]
            if column in TIME_COLUMNS:
                assert value.tzinfo is not None
                text = value.strftime("%Y-%m-%dT%H:%M:%SZ")
            elif value is None:
                text = ""
            else:
                text = str(value)
            if (column in MONEY_COLUMNS and text) or column in (
                "PricingQuantity",
                "ConsumedQuantity",
            ):  # the CSV writes the ledger's own digits
                assert Decimal(text) == Decimal(want[column]), column
            else:
                assert text == want[column], column
    assert sum(r["BilledCost"] for r in table.to_pylist()) == Decimal("24.000000")
    too_long = billing.get("/api/v1/export/focus", {"start": "2026-11-01T00:00:00Z",
                                                    "end": "2026-12-15T00:00:00Z",
                                                    "format": "parquet"})  # fmt: skip
    assert too_long.status_code == 400 and "format=parquet" in str(too_long.json())
