"""A resolved finding as team A's manager sees it in Debian's Chromium: the simulated
studio's fixes applied from its second day, the detectors resolve what the fixes removed,
and the findings page shows team A's resolved regression with what it projected and what
it realized (and no other team's finding); the overview carries the realized total.
Screenshot: docs/screenshots/findings-resolved.png."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from finops.accounts.models import Role, Team
from finops.accounts.services import membership_set
from finops.insights.models import Finding, RealizationState
from tests.dashboard.test_browser import SCREENSHOTS, TEAM_A


@pytest.mark.django_db(transaction=True)
@override_settings(INSIGHTS_RESOLVE_AFTER_RUNS=1)
def test_a_resolved_finding_with_projected_and_realized_savings(server):
    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is required: `make test` installs it")
    from playwright.sync_api import sync_playwright

    from finops.insights.services import findings_refresh
    from finops.simulation.studio import studio_simulate

    truth = studio_simulate(days=2, gpus=64, seed=7, apply_fixes_at=1,
                            end=timezone.now() - timedelta(hours=2))  # fmt: skip
    fixed = datetime.fromisoformat(truth.fixes_at)
    findings_refresh(start=fixed - timedelta(days=1), end=fixed)
    findings_refresh(start=fixed, end=fixed + timedelta(days=1))
    regression = Finding.objects.get(pattern="model_cost_regression", team__slug=TEAM_A)
    (resolution,) = regression.resolutions.all()
    assert resolution.state == RealizationState.MEASURED
    mia = get_user_model().objects.create_user("mia", "mia@example.com", "pw-mia-1")
    membership_set(user=mia, team=Team.objects.get(slug=TEAM_A), role=Role.MANAGER)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/login/")
        page.fill("#id_username", "mia")
        page.fill("#id_password", "pw-mia-1")
        page.click("button[type=submit]")
        page.goto(f"{server.url}/findings/?status=resolved&window=7d")
        section = page.locator(f"#finding-{regression.pk}")
        text = section.inner_text()
        assert f"Realized USD {resolution.realized_monthly} a month" in text
        assert f"USD {resolution.projected_monthly} projected" in text
        assert "the detector (condition gone)" in text
        assert "cost per usable second" in text
        body = page.inner_text("main")
        assert "sim-studio-b" not in body and "sim-studio-c" not in body
        assert "Savings statement" in body
        section.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "findings-resolved.png"), full_page=False)
        page.goto(f"{server.url}/?window=7d")
        assert page.inner_text("#realized").startswith("USD ")
        browser.close()
    assert errors == []
