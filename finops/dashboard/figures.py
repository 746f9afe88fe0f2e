"""Plotly figures for the dashboards: each a pure function from rows (the same rows the
table under the chart and the CSV show) to a figure. The browser draws them with the
plotly.js this server serves (no CDN)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

LAYOUT = {
    "margin": {"l": 48, "r": 16, "t": 36, "b": 40},
    "height": 320,
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "paper_bgcolor": "white",
    "plot_bgcolor": "white",
    "legend": {"orientation": "h", "y": -0.2},
}


def spend_by_team_per_day(days: list[dict[str, Any]], currency: str) -> go.Figure:
    """Stacked daily spend per team (idle as its own series)."""
    teams = sorted({r["name"] for d in days for r in d["rows"]})
    figure = go.Figure()
    for team in teams:
        totals = [{r["name"]: float(r["total_cost"]) for r in d["rows"]} for d in days]
        figure.add_bar(
            name=team, x=[d["start"][:10] for d in days], y=[t.get(team, 0.0) for t in totals]
        )
    figure.update_layout(
        barmode="stack", title=f"Spend per day ({currency})", yaxis_title=currency, **LAYOUT
    )
    return figure


def cost_per_usable_second(rows: list[dict[str, Any]], currency: str) -> go.Figure:
    shown = [r for r in rows if r["cost_per_usable_second"] is not None]
    figure = go.Figure(
        go.Bar(
            x=[r["name"] for r in shown],
            y=[float(r["cost_per_usable_second"]) for r in shown],
            text=[r["cost_per_usable_second"] for r in shown],
            textposition="outside",
        )
    )
    figure.update_layout(
        title=f"Cost per usable second ({currency})", yaxis_title=f"{currency} per second", **LAYOUT
    )
    return figure


def planner_costs(rows: list[dict[str, Any]]) -> go.Figure:
    """Cost per usable second per catalog GPU (those that fit and have a price)."""
    shown = [r for r in rows if r["fits"] and r["cost_per_usable_second"] is not None]
    figure = go.Figure(
        go.Bar(
            x=[r["gpu"] for r in shown],
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
            z=util,
            x=hours,
            y=nodes,
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


def cost_per_usable_second_by_project(days: list[dict[str, Any]], currency: str) -> go.Figure:
    projects = sorted({r["name"] for d in days for r in d["rows"] if r["name"] != "__none__"})
    figure = go.Figure()
    for project in projects:
        values = [
            {r["name"]: r["cost_per_usable_second"] for r in d["rows"]}.get(project) for d in days
        ]
        figure.add_scatter(
            name=project or "(no project)",
            mode="lines+markers",
            x=[d["start"][:10] for d in days],
            y=[float(v) if v is not None else None for v in values],
        )
    figure.update_layout(title=f"Cost per usable second by project ({currency})", **LAYOUT)
    return figure
