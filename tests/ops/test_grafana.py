"""The Grafana dashboard: every panel's query is valid PromQL (promtool) and names only
metrics FrameOps or dcgm-exporter expose; the provisioning points at it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "frameops.json"
FUNCTIONS = {
    "sum", "by", "rate", "avg", "max", "min", "count", "without", "on", "ignoring", "increase",
    "topk", "bottomk", "irate", "delta", "label_replace", "histogram_quantile", "and", "or",
    "unless", "e",
}  # fmt: skip


def _exposed() -> set[str]:
    from finops.costing.metrics import cost_families
    from finops.ops import metrics  # noqa: F401  (registers FrameOps' own metrics)

    dcgm = {
        line.split(",")[0].strip()
        for line in (ROOT / "deploy" / "dcgm-exporter" / "counters.csv").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    return dcgm | {f.name for f in cost_families()}


def _exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]


@pytest.mark.django_db
def test_every_panel_names_an_exposed_metric():
    exposed = _exposed()
    assert "frameops_team_month_to_date_cost" in exposed and "DCGM_FI_DEV_GPU_TEMP" in exposed
    titles = set()
    for title, expr in _exprs():
        without_strings = re.sub(r'"[^"]*"', '""', expr)
        without_ranges = re.sub(r"\[[^\]]*\]", "", without_strings)
        without_ranges = re.sub(r"\b\d+(\.\d+)?(e\d+)?\b", "", without_ranges)  # numbers
        names = {
            n
            for n in re.findall(
                r"[A-Za-z_:][A-Za-z0-9_:]*", re.sub(r"\{[^}]*\}", "", without_ranges)
            )
            if n not in FUNCTIONS and not re.fullmatch(r"\d+(e\d+)?", n)
        }
        labels_grouped = set(re.findall(r"by \(([^)]*)\)", expr))
        names -= {label.strip() for group in labels_grouped for label in group.split(",")}
        assert names, f"{title}: {expr} names no metric"
        assert names <= exposed, f"{title}: {sorted(names - exposed)} are not exposed"
        titles.add(title)
    assert any(t.startswith("GPU temperature") for t in titles)
    assert any("cost" in t.lower() for t in titles)


def test_the_queries_are_valid_promql(tmp_path):
    if shutil.which("promtool") is None:
        pytest.fail("Debian's prometheus package (promtool) is required: `make test`")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": expr} for i, (_, expr) in enumerate(_exprs())
    ]}]}  # fmt: skip
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    command = ["promtool", "check", "rules", str(path)]
    checked = subprocess.run(command, capture_output=True, text=True, timeout=60)  # noqa: S603
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_provisioning_loads_the_dashboard_from_the_prometheus_data_source():
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/frameops.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert source["datasources"][0]["type"] == "prometheus"
