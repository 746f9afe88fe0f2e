"""The weekly e-mail's charts as PNG images (matplotlib's Agg canvas: no display and no
browser in the worker; a Figure per chart, never pyplot's global state, so it is
thread-safe). E-mail clients draw no JavaScript, so the dashboard's Plotly figures cannot
be sent as they are; exporting them through kaleido would start a headless Chromium per
image inside the worker."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]  # fmt: skip
MAX_SERIES = 8


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def _figure() -> tuple[Figure, object]:
    figure = Figure(figsize=(6.4, 2.8), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    axes.spines[["top", "right"]].set_visible(False)
    axes.tick_params(labelsize=8)
    return figure, axes


def spend_per_day(daily: dict[str, dict[str, float]], days: list[str], currency: str) -> bytes:
    """Stacked spend per local day; the largest series first, the rest as 'other'."""
    figure, axes = _figure()
    ranked = sorted(daily, key=lambda k: sum(daily[k].values()), reverse=True)
    shown, rest = ranked[:MAX_SERIES], ranked[MAX_SERIES:]
    series = {name: [daily[name].get(d, 0.0) for d in days] for name in shown}
    if rest:
        series["other"] = [sum(daily[n].get(d, 0.0) for n in rest) for d in days]
    bottom = [0.0] * len(days)
    positions = list(range(len(days)))  # day labels as ticks, not parsed as dates
    for i, (name, values) in enumerate(series.items()):
        axes.bar(positions, values, bottom=bottom, label=name, color=COLOURS[i % len(COLOURS)])  # type: ignore[attr-defined]
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_xticks(positions, days)  # type: ignore[attr-defined]
    axes.set_title(f"Spend per day ({currency})", fontsize=10)  # type: ignore[attr-defined]
    if series:
        axes.legend(fontsize=7, frameon=False, ncols=min(4, len(series)))  # type: ignore[attr-defined]
    return _png(figure)


def cost_per_usable_second(
    names: list[str], this_week: list[float | None], last_week: list[float | None], currency: str
) -> bytes:
    """This week's cost per usable second against last week's, per team."""
    figure, axes = _figure()
    names = names[:12]
    positions = list(range(len(names)))
    width = 0.4
    axes.bar([p - width / 2 for p in positions], [v or 0.0 for v in last_week[:12]], width,  # type: ignore[attr-defined]
             label="last week", color="#bcbd22")  # fmt: skip
    axes.bar([p + width / 2 for p in positions], [v or 0.0 for v in this_week[:12]], width,  # type: ignore[attr-defined]
             label="this week", color="#1f77b4")  # fmt: skip
    axes.set_xticks(positions, names, rotation=30 if len(names) > 4 else 0, ha="right")  # type: ignore[attr-defined]
    axes.set_title(f"Cost per usable second ({currency})", fontsize=10)  # type: ignore[attr-defined]
    axes.legend(fontsize=7, frameon=False)  # type: ignore[attr-defined]
    return _png(figure)
