"""The embedded demo runs on SQLite: the ledger's write path there (no COPY) must give the
hand-checked scenario's ledger too. Run in a subprocess against a throw-away SQLite file."""

from __future__ import annotations

from tests.sqlite_demo import run_on_sqlite

SCRIPT = """
import json
from django.core.management import call_command
call_command("migrate", verbosity=0)
from finops.accounts.services import team_create
from finops.costing.engine import ledger_recompute
from finops.costing.models import LedgerDay, LedgerEntry, LedgerPrice
from finops.costing.selectors import basis_rows, basis_sums
from tests.costing import scenario
scenario.build(team_create(slug="studio-a", name="A"), team_create(slug="studio-b", name="B"))
ledger_recompute(start=scenario.T10, end=scenario.T12)
totals = {}
for basis in ("allocation", "usage"):
    rows = basis_rows(LedgerEntry.objects.values("bucket", "team__slug", "component")
                      .annotate(**basis_sums(basis)).order_by())
    for r in rows:
        key = f"{basis}:{r['team__slug'] or r['bucket']}:{r['component']}"
        totals[key] = str(round(r["amount"], 6))
    for r in LedgerDay.objects.filter(basis=basis).values("bucket", "team__slug", "component", "amount"):
        key = f"day-{basis}:{r['team__slug'] or r['bucket']}:{r['component']}"
        totals[key] = str(round(float(totals.get(key, 0)) + float(r["amount"]), 6))
from datetime import timedelta
from finops.accounts.models import Team
from finops.costing.selectors import AllocationQuery, allocation_report, clip_costs
day = scenario.T10.replace(hour=0)
clips = clip_costs(teams=Team.objects.all(), start=day, end=day + timedelta(days=1))
by_project = allocation_report(
    query=AllocationQuery.from_params({"window": f"{day.isoformat()},{(day + timedelta(days=1)).isoformat()}",
                                       "aggregate": "team,project"}),
    teams=Team.objects.all(), all_teams=True)
print(json.dumps({"totals": totals, "prices": LedgerPrice.objects.count(),
                  "clips": [[c["clip__external_id"], c["attempts"], c["usable"], str(c["cost"])]
                            for c in clips["clips"]],
                  "by_project": {r["name"]: r["total_cost"] for r in by_project["steps"][0]["rows"]}}))
"""


def test_the_scenario_ledger_on_the_embedded_sqlite_database(tmp_path):
    result = run_on_sqlite(SCRIPT, tmp_path)
    totals = {k: float(v) for k, v in result["totals"].items()}
    for prefix in ("allocation", "day-allocation"):
        assert totals[f"{prefix}:studio-a:gpu"] == 7.5
        assert totals[f"{prefix}:studio-b:gpu"] == 4
        assert totals[f"{prefix}:__idle__:idle"] == 11
        assert totals[f"{prefix}:__unallocated__:gpu"] == 1.5
    for prefix in ("usage", "day-usage"):
        assert totals[f"{prefix}:studio-a:gpu"] == 4.7
        assert totals[f"{prefix}:studio-a:waste"] == 2.8
        assert totals[f"{prefix}:studio-b:waste"] == 1.1
    assert result["prices"] == 4  # two nodes, two hours
    # The daily summaries read there too: clip c1's two attempts ($3.00 and $0.50), and the
    # day by team and project from the summary by job dimension.
    assert result["clips"][-1] == ["c1", 2, 1, "3.500000"] and len(result["clips"]) == 3
    assert result["by_project"]["studio-b,trailer"] == "4.00", result["by_project"]
