"""Layers point one way (STYLE.md): ``collectors/`` and ``inference/`` import nothing of
Django or ``finops``; domain apps never import ``finops.api``; telemetry does not import
costing or jobs code. Walks every module's imports (top level and inside functions) with
``ast``; there are no exceptions."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules(package: str) -> dict[str, set[str]]:
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        out[name] = _imports(path)
    return out


def _broken(module: str, imported: str) -> bool:
    top = module.split(".")[0]
    if top in ("collectors", "inference"):
        return imported == "django" or imported.startswith(("django.", "finops", "rest_framework"))
    if top == "finops":
        app = module.split(".")[1] if module.count(".") else ""
        domain = app not in ("api", "urls", "settings", "celery", "wsgi", "asgi", "ops")
        if domain and (imported == "finops.api" or imported.startswith("finops.api.")):
            return True
        if app == "telemetry" and imported.startswith(("finops.costing", "finops.jobs")):
            return True
    return False


def test_layers_point_one_way():
    broken = {
        (module, imported)
        for package in ("collectors", "inference", "finops")
        for module, imports in _modules(package).items()
        for imported in imports
        if _broken(module, imported)
    }
    assert broken == set(), "imports that break the layering rules"


def test_the_rule_catches_what_it_should():
    assert _broken("collectors.agent", "django.db")
    assert _broken("inference.runner", "finops.fleet.models")
    assert _broken("finops.costing.selectors", "finops.api.params")
    assert _broken("finops.telemetry.ingest", "finops.costing.dirty")
    assert not _broken("finops.api.job_views", "finops.jobs.events")
    assert not _broken("finops.jobs.events", "finops.validation")
