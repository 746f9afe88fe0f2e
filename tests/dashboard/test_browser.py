"""The dashboard as a person sees it, in Debian's Chromium driven by Playwright over a
labelled simulated studio: team A's manager sees team A's figures equal to the API's and
never team B; charts render as SVG with data; the window picker changes the numbers;
acknowledging a finding changes its status; the console stays clean. Screenshots of every
page land in docs/screenshots/ at 1400x900."""

from __future__ import annotations

import shutil
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from finops.accounts.models import Role, Team
from finops.accounts.services import membership_set

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
TEAM_A, TEAM_B = "sim-studio-a", "sim-studio-b"


def _studio() -> None:
    from datetime import timedelta

    from django.utils import timezone

    from finops.insights.services import findings_refresh
    from finops.simulation.studio import studio_simulate

    # A day that ended 12 hours ago: the last 24 hours hold half of it, the last 7 days all.
    truth = studio_simulate(days=1, gpus=64, seed=5, end=timezone.now() - timedelta(hours=12))
    findings_refresh(
        start=datetime.fromisoformat(truth.start), end=datetime.fromisoformat(truth.end)
    )
    Team.objects.filter(slug=TEAM_A).update(monthly_budget=Decimal("25000"))


def _charts_drawn(page, *ids: str) -> None:  # type: ignore[no-untyped-def]
    for chart in ids:
        page.wait_for_selector(f"#{chart} .main-svg", timeout=20000)
        # Data drawn: a bar, a line, a heatmap image or a marker inside the plot (plotly
        # may finish drawing after its SVG appears).
        page.wait_for_function(
            "id => document.getElementById(id)"
            ".querySelectorAll('.point, .trace path, .hm image, .bars path').length > 0",
            arg=chart,
            timeout=20000,
        )


def _cell(page, table: str, row_text: str, column: str) -> str:  # type: ignore[no-untyped-def]
    """The text of ``column`` (header label) in the row of ``table`` that starts with
    ``row_text``."""
    return page.evaluate(
        """([table, rowText, column]) => {
            const t = document.getElementById(table);
            const index = [...t.querySelectorAll("thead th")].findIndex(
                th => th.textContent.trim().startsWith(column));
            const row = [...t.querySelectorAll("tbody tr")].find(
                tr => tr.cells[0].textContent.trim() === rowText);
            if (index < 0) throw new Error(`no column ${column}`);
            return row ? row.cells[index].textContent.trim() : null;
        }""",
        [table, row_text, column],
    )


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_in_a_real_browser(server):
    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is required: `make test` installs it")
    from playwright.sync_api import sync_playwright

    _studio()
    users = get_user_model().objects
    mia = users.create_user("mia", "mia@example.com", "pw-mia-1")
    membership_set(user=mia, team=Team.objects.get(slug=TEAM_A), role=Role.MANAGER)
    admin = users.create_user("maria", "maria@example.com", "pw-maria-1")
    membership_set(user=admin, team=Team.objects.get(slug=TEAM_B), role=Role.ADMIN)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []

    def sign_in(browser, username: str, password: str):  # type: ignore[no-untyped-def]
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/")
        page.fill("#id_username", username)
        page.fill("#id_password", "wrong")
        page.click("button[type=submit]")
        assert "did not match" in page.inner_text("main")
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        return page

    # --- a guessed password, five times: sign-in pauses and says how to lift it -------------
    users.create_user("guessed", "guessed@example.com", "pw-guessed-1")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        page.goto(f"{server.url}/login/")
        for attempt in range(5):
            page.fill("#id_username", "guessed")
            page.fill("#id_password", f"wrong-{attempt}")
            page.click("button[type=submit]")
            page.wait_for_load_state()
        assert "Too many failed sign-ins" in page.inner_text("main")
        assert "axes_reset_username guessed" in page.inner_text("main")
        page.screenshot(path=str(SCREENSHOTS / "locked-out.png"))
        browser.close()
    call_command("axes_reset")  # as an admin lifts it: this address signs in again below

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])

        # --- team A's manager ---------------------------------------------------------
        page = sign_in(browser, "mia", "pw-mia-1")
        page.wait_for_url(f"{server.url}/")
        _charts_drawn(page, "spend-chart", "cps-chart", "funnel-chart")
        # The funnel of team A's own jobs: paid is what they held; no idle time of the fleet.
        assert _cell(page, "funnel", "paid", "Cost") == _cell(page, "funnel", "held", "Cost")
        assert page.inner_text("#yield").endswith("%")
        assert "Simulated studio" in page.inner_text(".simulated")
        # Plotly drew under a policy that allows no inline script (no violation is logged:
        # the console stays clean, asserted at the end).
        policy = page.request.get(f"{server.url}/").headers["content-security-policy"]
        script_src = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
        assert "unsafe-inline" not in script_src and "unsafe-eval" not in script_src
        # The navigation offers only what a manager may open.
        links = page.eval_on_selector_all("header nav a", "as => as.map(a => a.textContent)")
        assert "Fleet" not in links and "Admin" not in links and "Overview" in links
        main = page.inner_text("main")
        assert TEAM_B not in main and "Studio B" not in main
        api = page.request.get(
            f"{server.url}/api/v1/allocation", params={"window": "7d", "aggregate": "team"}
        ).json()
        (mine,) = api["steps"][0]["rows"]
        assert mine["name"] == TEAM_A
        assert _cell(page, "teams", TEAM_A, "Total") == mine["total_cost"]
        assert _cell(page, "teams", TEAM_A, "Regeneration") == mine["regeneration_cost"]
        assert _cell(page, "teams", TEAM_A, "Per usable s (") == mine["cost_per_usable_second"]
        assert page.inner_text("#spend") == mine["total_cost"]
        assert _cell(page, "teams", TEAM_A, "Budget a month") == "25000.00"
        page.screenshot(path=str(SCREENSHOTS / "overview.png"))
        week = page.inner_text("#spend")
        page.select_option("#window", "24h")
        page.wait_for_url("**/?window=24h")
        _charts_drawn(page, "spend-chart")
        day = page.inner_text("#spend")
        assert Decimal(day) < Decimal(week)  # half the simulated day is older than 24 h
        for path in ("/", "/findings/?status=all", f"/teams/{TEAM_A}/?window=7d"):
            for table in ("teams", "findings", "jobs", "clips", "breakdown", "funnel"):
                csv = page.request.get(f"{server.url}{path}&format=csv&table={table}"
                                       if "?" in path else
                                       f"{server.url}{path}?format=csv&table={table}")  # fmt: skip
                if csv.status == 200:
                    assert TEAM_B not in csv.text() and "Studio B" not in csv.text()
        for guessed in (
            f"/teams/{TEAM_B}/",
            f"/teams/{TEAM_B}/?format=csv&table=jobs",
        ):
            assert page.request.get(f"{server.url}{guessed}").status == 404
        assert page.request.get(f"{server.url}/fleet/").status == 403
        page.select_option("#team-switch", label=TEAM_A)
        page.wait_for_url(f"**/teams/{TEAM_A}/**")
        _charts_drawn(page, "team-chart", "waste-chart")
        page.select_option("#window", "7d")
        page.wait_for_url(f"**/teams/{TEAM_A}/?window=7d**")
        _charts_drawn(page, "team-chart", "waste-chart")
        assert TEAM_B not in page.inner_text("main")
        assert page.query_selector_all("#clips tbody tr")
        assert page.query_selector_all("#jobs tbody tr")
        page.screenshot(path=str(SCREENSHOTS / "team.png"))
        page.goto(f"{server.url}/findings/")
        assert TEAM_B not in page.inner_text("main")
        first = page.query_selector("section.finding")
        assert first is not None
        first.query_selector("button[value=acknowledged]").click()
        page.wait_for_url("**/findings/?status=open")
        page.goto(f"{server.url}/findings/?status=acknowledged")
        assert len(page.query_selector_all("section.finding")) == 1
        assert "Acknowledged" in page.inner_text("section.finding .state")
        # Placement: team A's workloads only, with the offering mapped for team A marked as
        # a replacement and the cheaper unmapped one for reference.
        page.goto(f"{server.url}/placement/?window=7d")
        _charts_drawn(page, "placement-chart")
        main = page.inner_text("main")
        assert TEAM_B not in main and "Studio B" not in main and "studio-c" not in main
        assert "hunyuan-video" in main and "may replace" in main and "for reference" in main
        hunyuan = next(s for s in page.query_selector_all("section.workload")
                       if "hunyuan-video" in s.query_selector("h3").inner_text())  # fmt: skip
        text = hunyuan.inner_text()
        assert "sim-openai sora-2 (720p)\tmay replace" in text
        assert "sim-budgetvideo lite-1 (720p)\tfor reference" in text
        page.screenshot(path=str(SCREENSHOTS / "placement.png"), full_page=True)
        page.context.close()

        # --- an admin: the fleet, a node, every finding, the planner --------------------
        page = sign_in(browser, "maria", "pw-maria-1")
        page.wait_for_url(f"{server.url}/")
        links = page.eval_on_selector_all("header nav a", "as => as.map(a => a.textContent)")
        assert "Fleet" in links
        assert len(page.query_selector_all("#findings tbody tr")) == 5
        page.goto(f"{server.url}/findings/")
        page.screenshot(path=str(SCREENSHOTS / "findings.png"))
        page.goto(f"{server.url}/fleet/?window=7d")
        _charts_drawn(page, "heatmap", "throttle")
        assert len(page.query_selector_all("#fleet tbody tr")) == 8  # eight simulated nodes
        page.screenshot(path=str(SCREENSHOTS / "fleet.png"))
        page.click("#fleet tbody tr:first-child a")
        page.wait_for_url("**/nodes/**")
        _charts_drawn(page, "node-chart")
        assert page.query_selector_all("#node-jobs tbody tr")
        page.screenshot(path=str(SCREENSHOTS / "node.png"))
        page.goto(f"{server.url}/planner/?shape=wan-14b&height=720&width=1280&frames=81")
        _charts_drawn(page, "plan-chart")
        page.screenshot(path=str(SCREENSHOTS / "planner.png"))
        page.goto(f"{server.url}/")
        page.select_option("#window", "custom")
        page.fill("#from", "2026-01-01")
        page.fill("#to", "2026-01-02")
        page.click("#custom-range button")
        page.wait_for_url("**/?window=custom&from=2026-01-01&to=2026-01-02")
        assert "2026-01-01 00:00" in page.inner_text("#controls")
        bad = page.request.get(f"{server.url}/?window=custom&from=2026-13-01&to=2026-01-02")
        assert bad.status == 400 and "from: &#x27;2026-13-01&#x27; is not a date" in bad.text()
        browser.close()
    assert not [e for e in errors if "Content Security Policy" in e], errors
    assert errors == []
