"""Premature horizontal scaling, per team, model and resolution: throughput per GPU
(frames x steps per GPU-second) of multi-GPU jobs below 70% of single-GPU jobs of the same
model and resolution. The nodes' interconnect is in the evidence (PCIe scales worse than
NVLink), and so is whether single-GPU attempts still fail or regenerate.

Public scaling figures for context (docs/insights.md): Wan 2.1 T2V-1.3B on RTX 4090 runs
2.33x faster on 8 GPUs (29% efficiency), T2V-14B on H100 6.38x (80%); xDiT HunyuanVideo
on PCIe L20 reaches 73% on 4 GPUs against 94% on NVLink H20.

Waste: the multi-GPU jobs' cost x (1 - efficiency). Fix: the same clips one GPU each
(or fewer, larger-VRAM GPUs), priced at the single-GPU throughput."""

from __future__ import annotations

from typing import Any

from finops.accounts.models import Team
from finops.insights.context import Context
from finops.insights.detectors import Draft, dec, fix_action, money, severity_of
from finops.insights.planning import predicted, shape_label, typical_shape


def detect(ctx: Context) -> list[Draft]:
    threshold = ctx.thresholds["scaling_efficiency"]
    jobs = ctx.jobs
    if not len(jobs):
        return []
    done = jobs[(jobs["status"] == "succeeded") & (jobs["gpu_seconds"] > 0)
                & jobs["frames"].notna() & jobs["steps"].notna()].copy()  # fmt: skip
    if not len(done):
        return []
    done["work"] = done["frames"].astype(float) * done["steps"].astype(float)
    done["multi"] = done["gpu_count"] > 1
    keys = ["team_id", "model_name", "resolution"]
    grouped = done.groupby([*keys, "multi"]).agg(
        work=("work", "sum"), gpu_seconds=("gpu_seconds", "sum"), cost=("cost", "sum"),
        jobs=("job_id", "count"), usable_seconds=("usable_seconds", "sum"),
        gpus=("gpu_count", "mean"),
    )  # fmt: skip
    grouped["throughput"] = grouped["work"] / grouped["gpu_seconds"]
    table = grouped["throughput"].unstack("multi")
    if True not in table.columns or False not in table.columns:
        return []
    efficiency = (table[True] / table[False]).dropna()
    hits = efficiency[efficiency < threshold]
    if not len(hits):
        return []
    gpus = ctx.gpus.set_index("gpu_id")
    multi_jobs = done[done["multi"]].assign(
        interconnect=done["first_gpu"].map(gpus["interconnect"])
    )
    interconnects = multi_jobs.groupby(keys)["interconnect"].agg(lambda s: sorted(set(s.dropna())))
    failing = jobs[(jobs["gpu_count"] == 1) & jobs["status"].isin(["failed", "oom"])]
    single_failures = failing.groupby(["team_id", "model_name"])["job_id"].count()
    slugs = dict(Team.objects.values_list("id", "slug"))
    drafts = []
    for key, eff in hits.items():
        team_id, model, resolution = key
        multi, single = grouped.loc[(*key, True)], grouped.loc[(*key, False)]
        eff = float(eff)
        waste = multi["cost"] * dec(1 - eff)
        links = interconnects.get(key, [])
        group = multi_jobs[(multi_jobs["team_id"] == team_id) & (multi_jobs["model_name"] == model)
                           & (multi_jobs["resolution"] == resolution)]  # fmt: skip
        plans, notes = _planned(group, gpus, links)
        drafts.append(Draft(
            pattern="premature_horizontal_scaling", scope_kind="model",
            scope_key=f"{slugs.get(team_id, team_id)}:{model}:{resolution}", team_id=int(team_id),
            evidence={
                "model": model, "resolution": resolution,
                "multi_gpu_jobs": int(multi["jobs"]),
                "mean_gpus_per_multi_job": round(float(multi["gpus"]), 2),
                "single_gpu_jobs": int(single["jobs"]),
                "throughput_per_gpu_multi": round(float(multi["throughput"]), 4),
                "throughput_per_gpu_single": round(float(single["throughput"]), 4),
                "throughput_unit": "frames x steps per GPU-second",
                "scaling_efficiency": round(eff, 4), "interconnect": links,
                "multi_gpu_cost": str(money(multi["cost"])),
                "single_gpu_failed_attempts": int(single_failures.get((team_id, model), 0)),
            },
            waste=waste, scope_cost=multi["cost"] + single["cost"],
            recommendation=f"{model} at {resolution} on {multi['gpus']:.0f} GPUs does "
            f"{eff:.0%} of the per-GPU work of a single GPU"
            + (f" over {', '.join(links)}" if links else "")
            + ". Render these clips one GPU each in parallel, or on fewer GPUs with more VRAM.",
            action=fix_action(
                kind="one_gpu_per_clip", scope_cost=multi["cost"] + single["cost"], saved=waste,
                usable_seconds=float(multi["usable_seconds"] + single["usable_seconds"]),
                assumptions=["single-GPU jobs of the same model and resolution keep their "
                             "throughput per GPU", "the clips' deadlines allow the longer "
                             "per-clip latency", *notes],
                **plans,
            ),
            thresholds={"scaling_efficiency": threshold},
            severity=severity_of(eff, threshold, higher_is_worse=False),
        ))  # fmt: skip
    return drafts


def _planned(group: Any, gpus: Any, links: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The planner's prediction for the group's typical shape on its GPU model: as run (its
    usual GPU count over its interconnect) and on one GPU."""
    shape = typical_shape(group)
    if shape is None or not len(group):
        return {}, []
    gpu_model = group["first_gpu"].map(gpus["gpu_model"]).mode()
    count = int(group["gpu_count"].mode().iloc[0])
    if not len(gpu_model) or count not in (2, 4, 8):
        return {}, []
    link = "nvlink" if "nvlink" in links else "pcie" if links else None
    multi = predicted(shape, str(gpu_model.iloc[0]), gpus=count, interconnect=link)
    single = predicted(shape, str(gpu_model.iloc[0]))
    if multi is None or single is None:
        return {}, []
    note = (f"the planner predicts {multi['efficiency']:.0%} scaling efficiency for "
            f"{shape_label(shape)} on {count} {gpu_model.iloc[0]} over {multi['interconnect']} "
            f"({multi['seconds_per_clip']:,.0f} s a clip against "
            f"{single['seconds_per_clip']:,.0f} s on one)")  # fmt: skip
    return {"planned_multi_gpu": multi, "planned_single_gpu": single}, [note]
