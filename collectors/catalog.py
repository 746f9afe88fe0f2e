"""The GPU model catalog: the shipped figures and matching of reported GPU names. Plain
Python, no Django: the server (``finops.fleet``) seeds and matches with it, and the
planner and runner (``inference``) read it directly.

NVML and dcgm-exporter report marketing strings ("NVIDIA H100 80GB HBM3",
"NVIDIA A100-SXM4-40GB", "NVIDIA H100 80GB HBM3 MIG 1g.10gb"). A reported name is
normalised, matched against each catalog model's patterns, and ties (the A100 40GB and
80GB share a family name) are broken by the memory size in the name, then by the memory
the GPU reports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CATALOG_FILE = Path(__file__).parent / "data" / "gpu_models.json"

_DROPPED_WORDS = re.compile(r"\b(nvidia|geforce|tesla)\b")
_MIG_SUFFIX = re.compile(r"\s+mig\b.*$")
_GB_TOKEN = re.compile(r"\b(\d{2,3})gb\b")


@dataclass(frozen=True)
class CatalogCandidate:
    """What matching needs to know about a model, whatever it is stored in."""

    key: Any
    vram_bytes: int
    patterns: Sequence[str]


@cache
def catalog_entries() -> tuple[dict[str, Any], ...]:
    """The shipped catalog: one dict per model, with ``vram_bytes`` computed."""
    entries = json.loads(CATALOG_FILE.read_text())
    out = []
    for entry in entries:
        item = dict(entry)
        item["vram_bytes"] = int(item.pop("vram_gib")) * 2**30
        item.setdefault("notes", "")
        out.append(item)
    return tuple(out)


def normalise_gpu_name(reported: str) -> str:
    name = reported.lower().replace("-", " ").replace("_", " ")
    name = _DROPPED_WORDS.sub(" ", name)
    name = " ".join(name.split())
    return _MIG_SUFFIX.sub("", name).strip()


def match_gpu_model(
    reported: str, candidates: Iterable[CatalogCandidate], *, mem_total_bytes: int | None = None
) -> Any | None:
    """The key of the one catalog model ``reported`` names, or None when none or several do."""
    name = normalise_gpu_name(reported)
    if not name:
        return None
    hits = [c for c in candidates if any(re.search(p, name) for p in c.patterns)]
    if len(hits) > 1:
        token = _GB_TOKEN.search(name)
        if token:
            gib = int(token.group(1))
            sized = [c for c in hits if round(c.vram_bytes / 2**30) == gib]
            hits = sized or hits
    if len(hits) > 1 and mem_total_bytes:
        # The reported total is a little under nominal (driver reserve): pick the nearest.
        hits.sort(key=lambda c: abs(c.vram_bytes - mem_total_bytes))
        if abs(hits[0].vram_bytes - mem_total_bytes) < abs(hits[1].vram_bytes - mem_total_bytes):
            hits = hits[:1]
    return hits[0].key if len(hits) == 1 else None
