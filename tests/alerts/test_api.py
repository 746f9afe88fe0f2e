"""The alerts API: reads with team isolation, writes by admins and the team's managers,
bad input named, and a channel's test message to a live receiver."""

from __future__ import annotations

import pytest

from finops.alerts.models import AlertRule, Channel
from tests.alerts.test_notifications import receiver  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db


def test_managers_write_their_teams_channels_and_rules(api, alice, bob, make_key, team_a, settings):
    settings.ALERT_WEBHOOK_ALLOWED_HOSTS = ["hooks.studio-a.example"]
    api.force_authenticate(alice)  # manager of studio-a
    made = api.post("/api/v1/channels", {"name": "a-mail", "kind": "email", "target": "ops@studio-a.example",
                                         "team": "studio-a"}, format="json")  # fmt: skip
    assert made.status_code == 201, made.content
    rule = api.post("/api/v1/alert-rules", {"name": "A thermal", "kind": "thermal_throttling", "threshold": 0.1,
                                            "resolve_threshold": 0.05, "team": "studio-a",
                                            "channels": [made.json()["id"]]}, format="json")  # fmt: skip
    assert rule.status_code == 201, rule.content
    fleet_wide = api.post(
        "/api/v1/channels", {"name": "fleet", "kind": "email", "target": "x@y.z"}, format="json"
    )
    assert fleet_wide.status_code == 403  # a manager is not an admin
    api.force_authenticate(bob)  # a viewer of studio-b
    assert api.get(f"/api/v1/alert-rules/{rule.json()['id']}").status_code == 404
    assert "A thermal" not in {r["name"] for r in api.get("/api/v1/alert-rules").json()}
    api.force_authenticate(None)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('read')}")
    assert "A thermal" in {r["name"] for r in api.get("/api/v1/alert-rules").json()}
    denied = api.patch(
        f"/api/v1/alert-rules/{rule.json()['id']}", {"enabled": False}, format="json"
    )
    assert denied.status_code == 403


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/alert-rules", {"name": "x", "kind": "thermal_throttling", "threshold": 0.1, "resolve_threshold": 0.5}, "resolve_threshold"),
        ("/api/v1/alert-rules", {"name": "x", "kind": "sloth", "threshold": 0.1}, "kind"),
        ("/api/v1/silences", {"matchers": {"node": "a"}, "starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T09:00:00Z"}, "ends_at"),
        ("/api/v1/silences", {"matchers": {"node": "a"}, "starts_at": "2026-12-01T10:00:00", "ends_at": "2026-12-01T11:00:00Z"}, "starts_at"),
        ("/api/v1/channels", {"name": "x", "kind": "webhook", "target": "http://10.0.0.5/hook"}, "target"),
        ("/api/v1/channels", {"name": "x", "kind": "email", "target": "not-an-address"}, "target"),
    ],
)  # fmt: skip
def test_bad_input_is_400_naming_the_field(api, root, path, body, field):
    api.force_authenticate(root)
    response = api.post(path, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["extra"]["fields"]


def test_a_channels_test_message_reaches_the_receiver(api, root, receiver):  # noqa: F811
    api.force_authenticate(root)
    channel = Channel.objects.create(name="ops", kind="webhook", target=receiver.url)
    answer = api.post(f"/api/v1/channels/{channel.pk}/test")
    assert answer.json() == {"delivered": True}
    ((_, body),) = receiver.received
    assert body["commonLabels"] == {"alertname": "FrameOpsTest"}


def test_the_default_rules_are_listed(api, make_key):
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('read')}")
    names = {r["name"]: r for r in api.get("/api/v1/alert-rules").json()}
    assert (names["Thermal throttling"]["threshold"], names["Thermal throttling"]["for_s"]) == (
        0.05,
        300,
    )
    assert (names["Power capping"]["threshold"], names["Power capping"]["for_s"]) == (0.10, 600)
    assert (names["Memory pressure"]["threshold"], names["Memory pressure"]["for_s"]) == (0.20, 900)
    assert names["Telemetry stale"]["threshold"] == 300
    assert AlertRule.objects.filter(kind="budget").count() == 2


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"params": {"window_s": 30}}, "params", "params.window_s must be from 60 to 86400 seconds in whole minutes"),
        ({"params": {"window_s": 90}}, "params", "in whole minutes"),
        ({"params": {"window_s": "300"}}, "params", "params.window_s must be a whole number"),
        ({"params": {"group_wait_s": 3601}}, "params", "params.group_wait_s must be from 0 to 3600"),
        ({"params": {"group_interval_s": 59}}, "params", "params.group_interval_s must be from 60"),
        ({"params": []}, "params", "must be a JSON object"),
        ({"for_s": 86401}, "for_s", "from 0 to 86400"),
        ({"repeat_interval_s": 59}, "repeat_interval_s", "from 60 to 2592000"),
    ],
)  # fmt: skip
def test_rule_parameters_are_held_to_their_documented_bounds(api, root, body, field, text):
    api.force_authenticate(root)
    made = {"name": "bounded", "kind": "thermal_throttling", "threshold": 0.1}
    response = api.post("/api/v1/alert-rules", {**made, **body}, format="json")
    assert response.status_code == 400, response.content
    assert text in str(response.json()["extra"]["fields"][field])
    at_bounds = {"window_s": 86400, "group_wait_s": 0, "group_interval_s": 60}
    ok = api.post("/api/v1/alert-rules", {**made, "params": at_bounds}, format="json")
    assert ok.status_code == 201, ok.content
