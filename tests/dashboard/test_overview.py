"""The overview page: sign-in, the same roles as the API, bad input named on the page,
an empty state that says what to do, and the page as a person sees it in Chromium
(Debian's, driven by Playwright; a screenshot lands in docs/screenshots/)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from finops.accounts.models import Role
from finops.accounts.services import membership_set
from finops.costing.engine import ledger_recompute
from tests.costing import scenario

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WINDOW = "2026-11-02T10:00:00Z,2026-11-02T12:00:00Z"


@pytest.mark.django_db
def test_sign_in_is_required(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


@pytest.mark.django_db
def test_a_viewer_sees_only_their_teams(client, team_a, team_b, bob):
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    client.force_login(bob)  # a viewer of studio-b
    page = client.get("/", {"window": WINDOW}).content.decode()
    assert "studio-b" in page and "studio-a" not in page
    assert "__idle__" not in page  # fleet rows only for callers who see every team
    assert ">4.00<" in page  # studio-b's $4.00 in the team table


@pytest.mark.django_db
def test_a_bad_window_is_named_on_the_page(client, alice):
    client.force_login(alice)
    response = client.get("/", {"window": "1000000d"})
    assert response.status_code == 400
    assert "window:" in response.content.decode()


@pytest.mark.django_db
def test_an_empty_studio_says_what_to_do(client, alice):
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "No cost in this window yet" in page and "simulate_studio" in page


@pytest.mark.django_db(transaction=True)
def test_the_overview_in_a_real_browser(server, team_a, team_b):
    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is required: `make test` installs it")
    from datetime import datetime

    from playwright.sync_api import sync_playwright

    from finops.insights.services import findings_refresh
    from finops.simulation.studio import studio_simulate

    truth = studio_simulate(days=1, gpus=64, seed=5)
    findings_refresh(
        start=datetime.fromisoformat(truth.start), end=datetime.fromisoformat(truth.end)
    )
    user = get_user_model().objects.create_user("maria", "maria@example.com", "pw-maria-1")
    membership_set(user=user, team=team_a, role=Role.ADMIN)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"{server.url}/")
        page.fill("#id_username", "maria")
        page.fill("#id_password", "wrong")
        page.click("button[type=submit]")
        assert "did not match" in page.inner_text("main")
        page.fill("#id_password", "pw-maria-1")
        page.click("button[type=submit]")
        page.wait_for_selector("#spend-chart .main-svg", timeout=20000)
        page.wait_for_selector("#cps-chart .main-svg", timeout=20000)
        assert "Simulated studio" in page.inner_text(".simulated")
        assert page.inner_text("#spend").strip() not in ("", "0.00")
        assert len(page.query_selector_all("#findings tbody tr")) == 5
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "overview.png"), full_page=True)
        page.select_option("#window", "24h")
        page.wait_for_url("**/?window=24h")
        browser.close()
