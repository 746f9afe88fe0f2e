"""Model cost regression: cost per usable second of a team's model up >= 20% after a
version change, at the same resolution (the latest version against the one before).

Waste: the extra cost per usable second x the new version's usable seconds. Fix: compare
the versions side by side (quality, steps, resolution) before moving every project."""

from __future__ import annotations

from decimal import Decimal

from finops.accounts.models import Team
from finops.insights.context import Context
from finops.insights.detectors import Draft, dec, fix_action, per_second, severity_of

MICRO = Decimal("0.000001")


def detect(ctx: Context) -> list[Draft]:
    threshold = ctx.thresholds["regression_increase"]
    jobs = ctx.jobs
    if not len(jobs):
        return []
    j = jobs[jobs["model_name"].astype(bool)].copy()
    keys = ["team_id", "model_name", "resolution"]
    versions = j.groupby([*keys, "model_version"]).agg(
        cost=("cost", "sum"), usable_seconds=("usable_seconds", "sum"),
        first=("started_at", "min"), jobs=("job_id", "count"),
    ).reset_index()  # fmt: skip
    versions = versions[versions["usable_seconds"] > 0]
    versions["cps"] = [c / dec(u) for c, u in
                       zip(versions["cost"], versions["usable_seconds"], strict=True)]  # fmt: skip
    versions = versions.sort_values([*keys, "first"])
    versions["previous_cps"] = versions.groupby(keys)["cps"].shift(1)
    versions["previous_version"] = versions.groupby(keys)["model_version"].shift(1)
    latest = versions.groupby(keys).tail(1).dropna(subset=["previous_cps"])
    slugs = dict(Team.objects.values_list("id", "slug"))
    drafts = []
    for _, r in latest.iterrows():
        # Compared as shown (four places, 0.01%): ledger lines carry sub-cent shares of the
        # hour, and a 20.00% increase must not come out as 19.9995% and slip under 20%.
        increase = round(float(r["cps"] / r["previous_cps"]) - 1, 4)
        if increase < threshold:
            continue
        waste = (r["cps"] - r["previous_cps"]) * dec(r["usable_seconds"])
        slug = slugs.get(r["team_id"], r["team_id"])
        drafts.append(Draft(
            pattern="model_cost_regression", scope_kind="model",
            scope_key=f"{slug}:{r['model_name']}:{r['resolution']}:{r['model_version']}",
            team_id=int(r["team_id"]),
            evidence={
                "model": r["model_name"], "resolution": r["resolution"],
                "version": r["model_version"], "previous_version": r["previous_version"],
                "cost_per_usable_second": per_second(r["cost"], float(r["usable_seconds"])),
                "previous_cost_per_usable_second": str(r["previous_cps"].quantize(MICRO)),
                "increase": round(increase, 4),
                "usable_seconds": round(float(r["usable_seconds"]), 3),
                "jobs": int(r["jobs"]),
            },
            waste=waste, scope_cost=r["cost"],
            recommendation=f"{r['model_name']} {r['model_version']} costs {increase:.0%} more per "
            f"usable second than {r['previous_version']} at {r['resolution']}. Compare the "
            "two versions side by side (quality, steps, attempts) before moving every project.",
            action=fix_action(
                kind="compare_versions", scope_cost=r["cost"], saved=waste,
                usable_seconds=float(r["usable_seconds"]),
                assumptions=[f"{r['previous_version']} gives clips of the same usability"],
                version=r["model_version"], previous_version=r["previous_version"],
            ),
            thresholds={"regression_increase": threshold},
            severity=severity_of(increase, threshold),
        ))  # fmt: skip
    return drafts
