"""Tables of the dashboard pages: one definition renders the HTML table (under a chart, or
on its own) and the CSV download of the same rows, so the two never disagree."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    """Point each table's download at the page's own query with ``format=csv&table=ID``."""
    for table in tables:
        params = request.GET.copy()
        params["format"] = "csv"
        params["table"] = table.id
        params.pop("page", None)
        table.csv_url = f"?{params.urlencode()}"


def table_csv(request: HttpRequest, tables: Sequence[Table]) -> HttpResponse:
    """The CSV of the table named by ``table`` (the page's first without one)."""
    wanted = request.GET.get("table") or (tables[0].id if tables else "")
    by_id = {t.id: t for t in tables}
    if wanted not in by_id:
        return HttpResponse(
            f"table: {wanted[:40]!r} is not on this page; use {', '.join(by_id) or 'none'}",
            status=400,
            content_type="text/plain; charset=utf-8",
        )
    table = by_id[wanted]
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{table.id}.csv"'
    writer = csv.writer(response)
    writer.writerow([c.key for c in table.columns])
    rows = table.csv_rows() if table.csv_rows is not None else table.rows
    for r in rows:
        writer.writerow([_csv_value(r.get(c.key)) for c in table.columns])
    return response
