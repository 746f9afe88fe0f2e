"""Weekly reports against a real SMTP server (aiosmtpd on loopback): the message parses
and its figures equal the API's; one delivery per (subscription, week) through retries
and repeated ticks; week boundaries in the recipient's zone; team scoping; the signed
one-click unsubscribe; provisional figures; the command, the preview and the page."""

from __future__ import annotations

import email
import io
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from django.core.management import call_command

from finops.costing.engine import ledger_recompute
from finops.costing.models import DirtyWindow
from finops.reports.content import Week, week_last_full
from finops.reports.models import ReportRun, ReportSubscription
from finops.reports.services import reports_send_due
from tests.costing import scenario

MONDAY = date(2026, 11, 2)  # the scenario's day
AFTER = datetime(2026, 11, 9, 8, tzinfo=UTC)  # Monday 08:00 UTC: the UTC week is due at 07:00
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = 0  # answer this many DATA commands with 451
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with self.lock:
            if self.refuse:
                self.refuse -= 1
                return "451 4.3.0 try again later"
            self.messages.append(
                email.message_from_bytes(envelope.content, policy=policy.default)  # type: ignore[arg-type]
            )
        return "250 OK"


@pytest.fixture
def inbox(settings) -> Iterator[Inbox]:  # type: ignore[no-untyped-def]
    import socket

    handler = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.FRAMEOPS_BASE_URL = "http://frameops.example"
        yield handler
    finally:
        controller.stop()


def _subscribe(user, *, zone: str = "UTC", team=None, weekday: int = 0, hour: int = 7):  # type: ignore[no-untyped-def]
    subscription = ReportSubscription.objects.create(
        user=user, email=user.email, team=team, weekday=weekday, hour=hour, timezone=zone
    )
    ReportSubscription.objects.filter(pk=subscription.pk).update(
        created_at=datetime(2026, 10, 1, tzinfo=UTC)
    )
    return subscription


def _parts(message: EmailMessage) -> dict[str, list]:
    parts: dict[str, list] = {}
    for part in message.walk():
        parts.setdefault(part.get_content_type(), []).append(part)
    return parts


def _api(client, user, window: str) -> dict:  # type: ignore[no-untyped-def]
    client.force_login(user)
    response = client.get("/api/v1/allocation", {"window": window, "aggregate": "team"})
    assert response.status_code == 200
    return {r["name"]: r for r in response.json()["steps"][0]["rows"]}


@pytest.fixture
def fleet(team_a, team_b):  # type: ignore[no-untyped-def]
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    DirtyWindow.objects.all().delete()


@pytest.mark.django_db
def test_the_report_arrives_whole_and_equals_the_api(inbox, fleet, client, alice):
    _subscribe(alice)
    counts = reports_send_due(now=AFTER)
    assert counts == {"claimed": 1, "sent": 1}
    (message,) = inbox.messages
    api = _api(client, alice, Week(MONDAY, "UTC").window)["studio-a"]
    assert message["Subject"].startswith("FrameOps weekly: studio-a USD 7.5")
    assert f"USD {api['cost_per_usable_second']} per usable second" in message["Subject"]
    assert message["List-Unsubscribe"].startswith("<http://frameops.example/reports/unsubscribe/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    parts = _parts(message)
    text = parts["text/plain"][0].get_content()
    html = parts["text/html"][0].get_content()
    assert f"Total: USD {api['total_cost']}" in text
    assert f"USD {api['total_cost']}" in html and "<script" not in html
    images = parts["image/png"]
    assert len(images) >= 2
    for image in images:
        cid = image["Content-ID"].strip("<>")
        assert f'src="cid:{cid}"' in html
        assert image.get_content()[:8] == b"\x89PNG\r\n\x1a\n"
    assert parts["multipart/related"] and parts["multipart/alternative"]
    (attachment,) = [p for p in message.iter_attachments() if p.get_content_type() == "text/csv"]
    frame = pd.read_csv(io.BytesIO(attachment.get_content().encode()))
    assert frame["total_cost"].dtype == "float64" and frame["gpu_hours"].dtype == "float64"
    assert frame["team"].dtype == object and set(frame["team"]) == {"studio-a"}
    assert round(frame["total_cost"].sum(), 2) == float(api["total_cost"])
    assert "http://frameops.example/teams/studio-a/?window=" in html
    assert "studio-b" not in message.as_string()


@pytest.mark.django_db
def test_one_delivery_through_refusals_retries_and_repeated_ticks(inbox, fleet, alice, settings):
    settings.REPORTS_RETRY_BACKOFF_S = 300
    _subscribe(alice)
    inbox.refuse = 1
    assert reports_send_due(now=AFTER) == {"claimed": 1, "retrying": 1}
    run = ReportRun.objects.get()
    assert run.status == "retrying" and "451" in run.error and inbox.messages == []
    assert reports_send_due(now=AFTER + timedelta(minutes=1)) == {"claimed": 0}  # backing off
    assert reports_send_due(now=AFTER + timedelta(minutes=6)) == {"claimed": 0, "sent": 1}
    assert reports_send_due(now=AFTER + timedelta(minutes=11)) == {"claimed": 0}
    call_command("send_weekly_reports", "--week", str(MONDAY), stdout=io.StringIO())
    assert len(inbox.messages) == 1
    run.refresh_from_db()
    assert run.status == "sent" and run.attempts == 2


@pytest.mark.django_db
def test_week_boundaries_follow_the_recipients_zone(inbox, fleet, client, alice, fiona, root):
    tokyo = _subscribe(alice, zone="Asia/Tokyo", hour=9)
    los_angeles = _subscribe(fiona, zone="America/Los_Angeles", hour=9)
    # Monday 08:00 UTC is Monday 17:00 in Tokyo and still Monday 00:00 in Los Angeles.
    assert reports_send_due(now=AFTER)["claimed"] == 1
    assert ReportRun.objects.get(subscription=tokyo).week_start == MONDAY
    assert not ReportRun.objects.filter(subscription=los_angeles).exists()
    assert reports_send_due(now=datetime(2026, 11, 9, 17, tzinfo=UTC))["claimed"] == 1
    assert ReportRun.objects.get(subscription=los_angeles).week_start == MONDAY
    tokyo_week, la_week = Week(MONDAY, "Asia/Tokyo"), Week(MONDAY, "America/Los_Angeles")
    assert tokyo_week.start == datetime(2026, 11, 1, 15, tzinfo=UTC)
    assert la_week.start == datetime(2026, 11, 2, 8, tzinfo=UTC)
    assert la_week.end == datetime(2026, 11, 9, 8, tzinfo=UTC)
    # The week before in Los Angeles spans the end of daylight saving time: 169 hours.
    before = la_week.before()
    assert before.end - before.start == timedelta(hours=169)
    assert week_last_full(
        datetime(2026, 11, 9, 2, tzinfo=UTC), "America/Los_Angeles"
    ).monday == date(2026, 10, 26)
    by_address = {m["To"]: m for m in inbox.messages}
    # fiona is finance: her report covers every team, as an admin's API view does.
    for subscription, week, viewer in ((tokyo, tokyo_week, alice), (los_angeles, la_week, root)):
        message = by_address[subscription.email]
        text = _parts(message)["text/plain"][0].get_content()
        assert week.label() in text
        rows = _api(client, viewer, week.window).values()
        total = sum(Decimal(r["total_cost"]) for r in rows)
        assert f"Total: USD {total:.2f}" in text


@pytest.mark.django_db
def test_a_report_that_cannot_be_built_fails_alone(inbox, fleet, alice, bob, monkeypatch):
    from finops.reports import services

    real = services.report_build

    def build(subscription, report, **kwargs):  # type: ignore[no-untyped-def]
        if subscription.email == alice.email:
            raise RuntimeError("chart backend gone")
        return real(subscription, report, **kwargs)

    monkeypatch.setattr(services, "report_build", build)
    _subscribe(alice)
    _subscribe(bob)
    assert reports_send_due(now=AFTER) == {"claimed": 2, "failed": 1, "sent": 1}
    assert [m["To"] for m in inbox.messages] == [bob.email]
    failed = ReportRun.objects.get(subscription__email=alice.email)
    assert failed.status == "failed" and "chart backend gone" in failed.error


@pytest.mark.django_db
def test_a_team_scoped_recipient_never_reads_another_team(inbox, fleet, bob):
    _subscribe(bob)  # a viewer of studio-b
    reports_send_due(now=AFTER)
    (message,) = inbox.messages
    whole = message.as_string()
    assert "studio-b" in message["Subject"] and "studio-a" not in whole
    for part in message.walk():
        if part.get_content_maintype() == "text":
            assert "studio-a" not in part.get_content()


@pytest.mark.django_db
def test_unsubscribe_works_once_without_sign_in_and_refuses_a_tampered_link(
    inbox, fleet, alice, client
):
    subscription = _subscribe(alice)
    reports_send_due(now=AFTER)
    link = inbox.messages[0]["List-Unsubscribe"].strip("<>").removeprefix("http://frameops.example")
    client.logout()
    assert "Stop the weekly report?" in client.get(link).content.decode()
    tampered = link.replace(link.split("/")[-2], link.split("/")[-2][:-3] + "xyz")
    assert client.post(tampered).status_code == 400
    answer = client.post(
        link, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert answer.status_code == 200 and "Unsubscribed" in answer.content.decode()
    subscription.refresh_from_db()
    assert subscription.enabled is False
    assert client.post(link).status_code == 410
    assert reports_send_due(now=AFTER + timedelta(days=7)) == {"claimed": 0}


@pytest.mark.django_db
def test_incomplete_data_waits_then_goes_out_marked_provisional(inbox, fleet, alice, settings):
    settings.REPORTS_PROVISIONAL_DELAY_S = 7200  # due at 07:00: waits until 09:00
    _subscribe(alice)
    DirtyWindow.objects.create(window_start=scenario.T10)
    assert reports_send_due(now=AFTER) == {"claimed": 1, "waiting": 1}
    assert inbox.messages == []
    assert reports_send_due(now=AFTER + timedelta(minutes=20)) == {"claimed": 0, "waiting": 1}
    assert reports_send_due(now=AFTER + timedelta(minutes=61)) == {"claimed": 0, "sent": 1}
    assert ReportRun.objects.get().sent_at == AFTER + timedelta(minutes=61)
    (message,) = inbox.messages
    assert message["Subject"].endswith("(provisional)")
    assert "1 hour(s) of the week are waiting to be recomputed" in message.as_string()
    assert ReportRun.objects.get().provisional


@pytest.mark.django_db
def test_the_command_names_bad_weeks_and_sends_to_one_address(inbox, fleet, alice):
    _subscribe(alice)
    out = io.StringIO()
    call_command("send_weekly_reports", "--week", str(MONDAY), "--dry-run", stdout=out)
    assert "FrameOps weekly: studio-a" in out.getvalue() and inbox.messages == []
    with pytest.raises(Exception, match="is a Tuesday"):
        call_command(
            "send_weekly_reports", "--week", "2026-11-03", "--dry-run", stdout=io.StringIO()
        )
    call_command(
        "send_weekly_reports", "--week", str(MONDAY), "--to", "qa@example.com", stdout=io.StringIO()
    )
    assert [m["To"] for m in inbox.messages] == ["qa@example.com"]
    assert not ReportRun.objects.exists()


@pytest.mark.django_db
def test_the_preview_and_the_subscriptions_page(client, fleet, alice):
    client.force_login(alice)
    page = client.get("/reports/preview", {"team": "studio-a", "week": str(MONDAY)})
    assert page.status_code == 200 and b"data:image/png;base64," in page.content
    assert b"USD 7.50" in page.content
    assert client.get("/reports/preview", {"team": "studio-b"}).status_code == 404
    bad = client.get("/reports/preview", {"week": "2026-11-04"})
    assert bad.status_code == 400 and b"week: 2026-11-04 is a Wednesday" in bad.content
    assert b"You get no weekly report yet" in client.get("/reports/").content
    refused = client.post(
        "/reports/",
        {"email": alice.email, "timezone": "Mars/Olympus", "hour": "25", "weekday": "1"},
    )
    assert refused.status_code == 400
    body = refused.content.decode()
    assert (
        "timezone: &#x27;Mars/Olympus&#x27; is not an IANA time zone" in body
        and "hour: must be" in body
    )
    assert client.post("/reports/", {"email": alice.email, "timezone": "Europe/Paris", "hour": "8",
                                     "weekday": "0", "team": "studio-a"}).status_code == 302  # fmt: skip
    subscription = ReportSubscription.objects.get(user=alice)
    assert (subscription.timezone, subscription.hour, subscription.team.slug) == (
        "Europe/Paris",
        8,
        "studio-a",
    )
    client.post(f"/reports/{subscription.pk}/change", {"action": "pause"})
    subscription.refresh_from_db()
    assert subscription.enabled is False


@pytest.mark.django_db
def test_the_report_in_a_real_browser(team_a, team_b, alice):
    import shutil

    from playwright.sync_api import sync_playwright

    from finops.insights.services import findings_refresh
    from finops.reports.content import recipient_scope, weekly_report
    from finops.reports.services import report_preview_html
    from finops.simulation.studio import studio_simulate

    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is required: `make test` installs it")
    end = datetime(2026, 11, 8, 12, tzinfo=UTC)
    truth = studio_simulate(days=1, gpus=64, seed=3, end=end)
    findings_refresh(
        start=datetime.fromisoformat(truth.start), end=datetime.fromisoformat(truth.end)
    )
    scope = recipient_scope(user=None, team=None)
    html = report_preview_html(weekly_report(scope, Week(MONDAY, "UTC"), now=end), None)
    assert "sim-studio-a" in html and "sim-studio-c" in html
    # The placement section: studio A's HunyuanVideo could run on the offering mapped for it.
    assert "Where it could run for less" in html
    assert "of every dollar paid for GPU time became usable video" in html
    assert "sim-studio-a / hunyuan-video 1280x720" in html and "sim-openai sora-2" in html
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 760, "height": 1400})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_content(html)
        assert page.eval_on_selector_all(
            "img", "imgs => imgs.every(i => i.complete && i.naturalWidth > 0)"
        )
        page.screenshot(path=str(SCREENSHOTS / "weekly-report.png"), full_page=True)
        browser.close()
    assert errors == []
