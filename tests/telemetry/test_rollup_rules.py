"""The rollup rules, hand-computed (tests/telemetry/rollup_cases.py), on PostgreSQL and on
the embedded demo's SQLite alike."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.sqlite_demo import run_on_sqlite
from tests.telemetry.rollup_cases import EXPECTED, cases_run


def _close(got: Any, want: Any, path: str = "") -> list[str]:
    """Where ``got`` differs from ``want`` (floats to 1e-6 relative)."""
    if isinstance(want, dict):
        if not isinstance(got, dict) or set(got) != set(want):
            return [
                f"{path}: keys {sorted(got) if isinstance(got, dict) else got} != {sorted(want)}"
            ]
        return [d for k in want for d in _close(got[k], want[k], f"{path}.{k}")]
    if isinstance(want, float) and isinstance(got, int | float):
        return (
            []
            if math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-6)
            else [f"{path}: {got} != {want}"]
        )
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


@pytest.mark.django_db
def test_rollup_rules_on_postgresql():
    got = cases_run()
    assert _close(got, EXPECTED) == []


def test_rollup_rules_on_sqlite(tmp_path):
    script = (
        "import json\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
        "from tests.telemetry.rollup_cases import cases_run\n"
        "print(json.dumps(cases_run(), default=str))\n"
    )
    got = run_on_sqlite(script, tmp_path)
    assert _close(got, EXPECTED) == []
