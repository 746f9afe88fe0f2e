"""Regeneration waste: clips rendered again and again, per team (DESIGN: attempts per
usable clip > 2, or non-usable attempts >= 30% of the team's cost).

Waste: the cost of the attempts that were not usable (or failed). Fix: draft previews at
low resolution, seed locking, prompt templates; priced at the target attempt rate."""

from __future__ import annotations

from finops.accounts.models import Team
from finops.insights.context import Context
from finops.insights.detectors import Draft, dec, fix_action, money, severity_of


def detect(ctx: Context) -> list[Draft]:
    t = ctx.thresholds
    teams = ctx.ledger_team
    jobs = ctx.jobs
    if not len(teams) or not len(jobs):
        return []
    cost = teams.groupby("team_id")["amount"].sum()
    regen = teams.groupby("team_id")["regeneration"].sum()
    finished = jobs[jobs["finished_at"].notna() & (jobs["finished_at"] >= ctx.start)]
    attempts = finished.groupby("team_id")["job_id"].count()
    usable_clips = finished[finished["usable_seconds"] > 0].groupby("team_id")["job_id"].count()
    usable_seconds = finished.groupby("team_id")["usable_seconds"].sum()
    per_clip = (attempts / usable_clips.reindex(attempts.index)).astype(float)
    share = (regen / cost.where(cost > 0)).astype(float)
    slugs = dict(Team.objects.filter(id__in=cost.index.tolist()).values_list("id", "slug"))
    drafts = []
    for team_id in cost.index:
        a, s = per_clip.get(team_id), share.get(team_id)
        many = a is not None and a == a and a > t["regen_attempts_per_clip"]
        costly = s is not None and s == s and s >= t["regen_cost_share"]
        if not (many or costly):
            continue
        team_cost, waste = cost[team_id], regen[team_id]
        target = t["regen_target_attempts"]
        saved = waste
        if a is not None and a == a and a > target:
            saved = min(waste, team_cost * (1 - dec(target / a)))
        drafts.append(Draft(
            pattern="regeneration_waste", scope_kind="team", scope_key=slugs[team_id],
            team_id=int(team_id),
            evidence={
                "attempts": int(attempts.get(team_id, 0)),
                "usable_clips": int(usable_clips.get(team_id, 0)),
                "attempts_per_usable_clip": round(a, 3) if a is not None and a == a else None,
                "regeneration_cost": str(money(waste)), "team_cost": str(money(team_cost)),
                "regeneration_cost_share": round(s, 4) if s is not None and s == s else None,
            },
            waste=waste, scope_cost=team_cost,
            recommendation=(
                f"{slugs[team_id]} renders {a:.1f} attempts per usable clip"
                if a is not None and a == a else f"{slugs[team_id]} has no usable clip yet"
            ) + (f"; {s:.0%} of its GPU cost went to attempts nobody used" if s == s else "")
            + ". Preview drafts at low resolution and few steps before the full render, lock "
            "seeds once a draft is approved, and keep prompt templates per project.",
            action=fix_action(
                kind="fewer_attempts", scope_cost=team_cost, saved=saved,
                usable_seconds=float(usable_seconds.get(team_id, 0.0)),
                assumptions=[f"attempts per usable clip fall to {target}",
                             "each attempt costs what this window's attempts cost on average"],
                target_attempts_per_clip=target,
            ),
            thresholds={"regen_attempts_per_clip": t["regen_attempts_per_clip"],
                        "regen_cost_share": t["regen_cost_share"],
                        "regen_target_attempts": target},
            severity=severity_of(a, t["regen_attempts_per_clip"]) if many
            else severity_of(s, t["regen_cost_share"]),
        ))  # fmt: skip
    return drafts
