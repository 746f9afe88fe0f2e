"""Plotly figures for the dashboards: each a pure function from rows (the same rows the
table under the chart and the CSV show) to a figure. The browser draws them with the
plotly.js this server serves (no CDN).

Figures are built as plain data (``Figure``) and written by plotly's JSON encoder: plotly's
figure objects validate every property of every trace as it is set, which was a third of
the overview's time with fifty teams and most of the node page's with a day of minutes.
The traces here are few kinds with fixed, known properties."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio


class Figure:
    """A figure as the JSON plotly.js reads: ``add_bar``/``add_scatter`` (``row`` for a
    subplot of ``subplots``), ``update_layout`` (``title`` and
    ``xaxis_title``/``yaxis_title`` as plotly.py takes them) and ``to_json``."""

    def __init__(self, layout: dict[str, Any] | None = None) -> None:
        self.data: list[dict[str, Any]] = []
        self.layout: dict[str, Any] = dict(layout or {})

    def _add(self, kind: str, row: int | None = None, col: int | None = None,
             **props: Any) -> None:  # fmt: skip
        if row is not None and row > 1:
            props.update(xaxis=f"x{row}", yaxis=f"y{row}")
        self.data.append({"type": kind, **props})

    def add_bar(self, **props: Any) -> None:
        self._add("bar", **props)

    def add_scatter(self, **props: Any) -> None:
        self._add("scatter", **props)

    def update_layout(self, **props: Any) -> None:
        for key, value in props.items():
            if key == "title" and isinstance(value, str):
                value = {"text": value}
            axis, _, leaf = key.partition("_")
            if axis in ("xaxis", "yaxis") and leaf == "title":
                self.layout.setdefault(axis, {})["title"] = {"text": value}
                continue
            self.layout[key] = value

    def to_json(self) -> str:
        return str(pio.to_json({"data": self.data, "layout": self.layout}, validate=False))


@lru_cache(maxsize=8)
def _subplots_layout(titles: tuple[str, ...], spacing: float) -> dict[str, Any]:
    from plotly.subplots import make_subplots

    made = make_subplots(rows=len(titles), cols=1, shared_xaxes=True, subplot_titles=titles,
                         vertical_spacing=spacing)  # fmt: skip
    return dict(made.to_plotly_json()["layout"])


def subplots(titles: list[str], *, spacing: float = 0.04) -> Figure:
    """A figure of one column of panels sharing the time axis (the layout plotly's
    ``make_subplots`` gives, made once per set of titles)."""
    return Figure(copy.deepcopy(_subplots_layout(tuple(titles), spacing)))


LAYOUT = {
    "margin": {"l": 48, "r": 16, "t": 36, "b": 40},
    "height": 320,
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "paper_bgcolor": "white",
    "plot_bgcolor": "white",
    "legend": {"orientation": "h", "y": -0.2},
}


def _nums(values: Any) -> np.ndarray:
    """Numbers as a float array (None as NaN, drawn as a gap): plotly validates an array
    at once rather than value by value, which is what makes long series cheap."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _labels(values: Any) -> np.ndarray:
    return np.array(list(values), dtype=object)


def spend_by_team_per_day(days: list[dict[str, Any]], currency: str) -> Figure:
    """Stacked daily spend per team (idle as its own series)."""
    teams = sorted({r["name"] for d in days for r in d["rows"]})
    figure = Figure()
    totals = [{r["name"]: float(r["total_cost"]) for r in d["rows"]} for d in days]
    x = _labels(d["start"][:10] for d in days)
    for team in teams:
        figure.add_bar(name=team, x=x, y=_nums(t.get(team, 0.0) for t in totals))
    figure.update_layout(
        barmode="stack", title=f"Spend per day ({currency})", yaxis_title=currency, **LAYOUT
    )
    return figure


def planner_costs(rows: list[dict[str, Any]]) -> go.Figure:
    """Cost per usable second per catalog GPU (those that fit and have a price)."""
    shown = [r for r in rows if r["fits"] and r["cost_per_usable_second"] is not None]
    figure = go.Figure(
        go.Bar(
            x=[r["gpu"] if r["gpus"] == 1 else f"{r['gpus']} x {r['gpu']}" for r in shown],
            y=[float(r["cost_per_usable_second"]) for r in shown],
            text=[f"{float(r['cost_per_usable_second']):.4f}" for r in shown],
            textposition="outside",
        )
    )
    figure.update_layout(title="Predicted cost per usable second (USD)", **LAYOUT)
    return figure


def utilisation_heatmap(
    nodes: list[str], hours: list[str], util: list[list[float | None]]
) -> go.Figure:
    figure = go.Figure(
        go.Heatmap(
            z=np.array([_nums(row) for row in util]) if util else None,
            x=_labels(hours),
            y=_labels(nodes),
            zmin=0,
            zmax=100,
            colorscale="Viridis",
            colorbar={"title": "SM %"},
        )
    )
    figure.update_layout(
        title="GPU utilisation by node and hour (mean SM %)",
        **{**LAYOUT, "height": max(320, 22 * len(nodes) + 120)},
    )
    return figure


def throttle_by_reason(nodes: list[str], reasons: dict[str, list[float]]) -> go.Figure:
    figure = go.Figure()
    for reason, seconds in reasons.items():
        figure.add_bar(name=reason, x=nodes, y=[s / 3600 for s in seconds])
    figure.update_layout(
        barmode="stack", title="Throttled GPU-hours by reason", yaxis_title="GPU-hours", **LAYOUT
    )
    return figure


def cost_per_usable_second_trend(days: list[dict[str, Any]], currency: str) -> Figure:
    """Each team's cost per usable second per day (fleet rows such as idle left out)."""
    return _lines(days, currency, "team", skip_prefix="__")


def cost_per_usable_second_by(days: list[dict[str, Any]], currency: str, by: str) -> Figure:
    return _lines(days, currency, by, skip_prefix="__none__")


def _lines(days: list[dict[str, Any]], currency: str, by: str, *, skip_prefix: str) -> Figure:
    names = sorted(
        {r["name"] for d in days for r in d["rows"] if not r["name"].startswith(skip_prefix)}
    )
    figure = Figure()
    per_day = [{r["name"]: r["cost_per_usable_second"] for r in d["rows"]} for d in days]
    x = _labels(d["start"][:10] for d in days)
    for name in names:
        figure.add_scatter(name=name or "(none)", mode="lines+markers", x=x,
                           y=_nums(values.get(name) for values in per_day))  # fmt: skip
    figure.update_layout(
        title=f"Cost per usable second by {by} ({currency})",
        yaxis_title=f"{currency} per usable second",
        **LAYOUT,
    )
    return figure


def waste_against_allocation(rows: list[dict[str, Any]], currency: str, by: str) -> go.Figure:
    """Per row: the used part of the held GPU time and the waste, stacked to the allocation."""
    names = [r["name"] for r in rows]
    figure = go.Figure()
    figure.add_bar(name="used", x=names, y=[float(r["gpu_cost"]) for r in rows])
    figure.add_bar(name="waste (held, unused)", x=names, y=[float(r["waste_cost"]) for r in rows])
    figure.update_layout(
        barmode="stack",
        title=f"Waste against allocation by {by} ({currency})",
        yaxis_title=currency,
        **LAYOUT,
    )
    return figure


def storage_await(rows: list[dict[str, Any]]) -> go.Figure:
    shown = rows[:30]
    figure = go.Figure(
        go.Bar(
            x=[r["device"] for r in shown],
            y=[r["await_mean_ms"] or 0.0 for r in shown],
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [
                    max(0.0, (r["await_max_ms"] or 0) - (r["await_mean_ms"] or 0)) for r in shown
                ],
                "arrayminus": [0.0] * len(shown),
            },
        )
    )
    figure.update_layout(
        title="Storage await by device (mean, bar to the max)", yaxis_title="ms", **LAYOUT
    )
    return figure


# Series of the node page, in the order of its panels.
NODE_SERIES = {
    "util_mean_pct": "SM utilisation (%)",
    "mem_frac_mean": "Memory used (%)",
    "power_mean_w": "Power (W)",
    "temp_max_c": "Temperature (°C)",
    "clock_ratio_mean": "SM clock (% of max)",
}


def node_telemetry(
    series: dict[str, dict[str, list[Any]]],
    power_limits: list[int],
    throttle: dict[str, list[float]],
    periods: list[str],
) -> Figure:
    """One panel per measure (a line per GPU, power against the model's limit) and the
    throttled seconds by reason per period, sharing the time axis."""
    titles = [*NODE_SERIES.values(), "Throttled seconds by reason"]
    figure = subplots(titles)
    for row, key in enumerate(NODE_SERIES, start=1):
        for i, (gpu, values) in enumerate(sorted(series.items())):
            figure.add_scatter(
                row=row, col=1, x=_labels(values["ts"]), y=_nums(values[key]), name=gpu,
                mode="lines", legendgroup=gpu, showlegend=row == 1,
                line={"color": PALETTE[i % len(PALETTE)]},
            )  # fmt: skip
        if key == "power_mean_w" and periods:
            for limit in power_limits:
                figure.add_scatter(
                    row=row, col=1, x=[min(v["ts"][0] for v in series.values()),
                                       max(v["ts"][-1] for v in series.values())],
                    y=[limit, limit], name=f"limit {limit} W", mode="lines",
                    line={"dash": "dash", "color": "#cf222e"},
                )  # fmt: skip
    stamps = [v for values in series.values() for v in values["ts"]]
    ordered = sorted(set(stamps))
    for reason, seconds in throttle.items():
        figure.add_bar(row=len(titles), col=1, x=_labels(ordered), y=_nums(seconds), name=reason)
    figure.update_layout(
        **{**LAYOUT, "height": 220 * len(titles), "legend": {"orientation": "h", "y": -0.03}},
        barmode="stack",
    )
    return figure


PALETTE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
]  # fmt: skip


def placement_costs(workloads: list[Any]) -> go.Figure:
    """Per workload: today's cost per usable second against the cheapest option that may
    replace it (a fitting GPU or a mapped offering) and the cheapest for reference."""
    names = [f"{w.team} {w.model_name} {w.resolution}" for w in workloads]

    def cheapest(w: Any, *, recommendable: bool) -> float | None:
        priced = [
            float(o.cost_per_usable_second)
            for o in w.options
            if o.kind != "today"
            and o.recommendable is recommendable
            and o.cost_per_usable_second is not None
        ]
        return min(priced) if priced else None  # fmt: skip

    figure = go.Figure()
    figure.add_bar(name="today", x=names,
                   y=[float(w.today.cost_per_usable_second or 0) for w in workloads])  # fmt: skip
    figure.add_bar(name="cheapest that may replace it", x=names,
                   y=[cheapest(w, recommendable=True) for w in workloads])  # fmt: skip
    figure.add_bar(name="cheapest for reference (not mapped)", x=names,
                   y=[cheapest(w, recommendable=False) for w in workloads])  # fmt: skip
    figure.update_layout(barmode="group", title="Cost per usable second by where it runs (USD)",
                         yaxis_title="USD per usable second", **LAYOUT)  # fmt: skip
    return figure


FUNNEL_LABELS = {"paid": "paid", "held": "held by a job", "active": "SM active",
                 "used": "used (usage basis)", "usable": "on usable output"}  # fmt: skip


def funnel(stages: list[dict[str, Any]], currency: str) -> go.Figure:
    """Where each paid dollar of GPU time went (``finops.costing.funnel``)."""
    figure = go.Figure(
        go.Funnel(
            y=[FUNNEL_LABELS[s["stage"]] for s in stages],
            x=[float(s["cost"]) for s in stages],
            textinfo="value+percent initial",
        )
    )
    figure.update_layout(title=f"Of every dollar paid for GPU time ({currency})", **LAYOUT)
    return figure
