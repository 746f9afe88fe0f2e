"""Tables of the dashboard pages: one definition renders the HTML table (under a chart, or
on its own) and the CSV download of the same rows, so the two never disagree."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.http import HttpRequest, HttpResponse


@dataclass(frozen=True)
class Col:
    key: str
    label: str
    num: bool = False
    # Decimal places for floats (money arrives as strings already rounded by the selectors).
    places: int | None = None
    # The row key holding this cell's link, if any.
    link: str | None = None


@dataclass
class Table:
    id: str
    title: str
    columns: Sequence[Col]
    rows: list[dict[str, Any]]
    empty: str = "Nothing in this window."
    note: str = ""
    csv_url: str = ""
    parquet_url: str = ""
    # Rows of the CSV when they are more than the page shows (every job, not one page).
    csv_rows: Callable[[], Any] | None = field(default=None, repr=False)
    # Rows drawn on the page (a month by day and team is thousands); the CSV has them all.
    limit: int = 200

    def cells(self) -> list[list[tuple[str, str | None, bool]]]:
        return [
            [(_text(r.get(c.key), c.places), r.get(c.link) if c.link else None, c.num)
             for c in self.columns]
            for r in self.rows[: self.limit]
        ]  # fmt: skip

    @property
    def truncated(self) -> bool:
        return len(self.rows) > self.limit


def _text(value: Any, places: int | None) -> str:
    if value is None:
        return "\N{EN DASH}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and places is not None:
        return f"{value:,.{places}f}"
    if isinstance(value, Decimal) and places is not None:
        return f"{value:,.{places}f}"
    return str(value)


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def tables_link(request: HttpRequest, tables: Sequence[Table]) -> None:
    """Point each table's downloads at the page's own query with ``format=csv&table=ID``
    (and ``format=parquet``)."""
    for table in tables:
        params = request.GET.copy()
        params["format"] = "csv"
        params["table"] = table.id
        params.pop("page", None)
        table.csv_url = f"?{params.urlencode()}"
        params["format"] = "parquet"
        table.parquet_url = f"?{params.urlencode()}"


def _wanted(request: HttpRequest, tables: Sequence[Table]) -> Table | HttpResponse:
    wanted = request.GET.get("table") or (tables[0].id if tables else "")
    by_id = {t.id: t for t in tables}
    if wanted not in by_id:
        return HttpResponse(
            f"table: {wanted[:40]!r} is not on this page; use {', '.join(by_id) or 'none'}",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    return by_id[wanted]


def table_export(request: HttpRequest, tables: Sequence[Table]) -> HttpResponse:
    """The table named by ``table`` (the page's first without one) as ``format`` csv or
    parquet."""
    table = _wanted(request, tables)
    if isinstance(table, HttpResponse):
        return table
    if request.GET.get("format") == "parquet":
        return table_parquet(table)
    return table_csv(table)


_NUMBER = re.compile(r"-?\d+(\.\d+)?")
_TIMES = (("%Y-%m-%d %H:%M:%S", re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")),
          ("%Y-%m-%d %H:%M", re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d")),
          ("%Y-%m-%dT%H:%M:%SZ", re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")))  # fmt: skip
_DAY = re.compile(r"\d{4}-\d\d-\d\d")


def _column(values: list[Any], col: Col) -> tuple[Any, list[Any]]:
    """A Parquet type for a table column and its values: money (numeric strings and
    Decimals) as decimals, times the dashboard writes (UTC) as zoned timestamps, days as
    dates, numbers and flags as such, the rest strings."""
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_(), values
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64(), values
    if present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
        return pa.float64(), [None if v is None else float(v) for v in values]
    if present and all(
        isinstance(v, Decimal) or (col.num and isinstance(v, str) and _NUMBER.fullmatch(v))
        for v in present
    ):
        decimals = [Decimal(str(v)) for v in present]
        scale = max(max(-d.as_tuple().exponent, 0) for d in decimals)  # type: ignore[operator]
        return pa.decimal128(38, scale), [None if v is None else Decimal(str(v)) for v in values]
    if present and all(isinstance(v, datetime) for v in present):
        return pa.timestamp("us", tz="UTC"), values
    if present and all(isinstance(v, str) for v in present):
        for fmt, pattern in _TIMES:
            if all(pattern.fullmatch(v) for v in present):
                return pa.timestamp("us", tz="UTC"), [
                    None if v is None else datetime.strptime(v, fmt).replace(tzinfo=UTC)
                    for v in values
                ]
        if all(_DAY.fullmatch(v) for v in present):
            return pa.date32(), [None if v is None else date.fromisoformat(v) for v in values]
    return pa.string(), [None if v is None else str(v) for v in values]


def table_parquet(table: Table) -> HttpResponse:
    """The table's rows (all of them, as the CSV) as one typed Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(table.csv_rows() if table.csv_rows is not None else table.rows)
    fields, arrays = [], []
    for c in table.columns:
        kind, values = _column([r.get(c.key) for r in rows], c)
        fields.append(pa.field(c.key, kind))
        arrays.append(pa.array(values, type=kind))
    out = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), out)
    response = HttpResponse(out.getvalue(), content_type="application/vnd.apache.parquet")
    response["Content-Disposition"] = f'attachment; filename="{table.id}.parquet"'
    return response


def table_csv(table: Table) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{table.id}.csv"'
    writer = csv.writer(response)
    writer.writerow([c.key for c in table.columns])
    rows = table.csv_rows() if table.csv_rows is not None else table.rows
    for r in rows:
        writer.writerow([_csv_value(r.get(c.key)) for c in table.columns])
    return response
