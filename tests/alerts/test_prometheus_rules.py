"""The exported Prometheus rules: current with the defaults, valid for promtool, and their
unit tests (input series -> expected alerts) pass (Debian's prometheus package)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from finops.alerts.prometheus_rules import rules_yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool (Debian's prometheus package) is required: `make test` installs it")
    return found


def test_the_committed_rules_are_the_exported_ones(tmp_path):
    out = io.StringIO()
    call_command("export_prometheus_rules", "--output", "-", stdout=out)
    assert out.getvalue() == rules_yaml() == (DEPLOY / "frameops-rules.yml").read_text(), (
        "deploy/prometheus/frameops-rules.yml is stale: run manage.py export_prometheus_rules"
    )
    written = tmp_path / "rules.yml"
    call_command("export_prometheus_rules", "--output", str(written), stdout=io.StringIO())
    assert written.read_text() == rules_yaml()


def test_promtool_checks_the_rules():
    done = subprocess.run([_promtool(), "check", "rules", str(DEPLOY / "frameops-rules.yml")],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_promtool_unit_tests_pass():
    done = subprocess.run([_promtool(), "test", "rules", str(DEPLOY / "frameops-rules.test.yml")],  # noqa: S603
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
