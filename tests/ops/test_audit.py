"""The audit trail: who changed what and when, recorded for the settings that move money or
access, shown in the admin and exported by admins through GET /api/v1/audit."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from auditlog.models import LogEntry

from finops.accounts.models import Role
from finops.accounts.services import api_key_create, api_key_revoke, membership_set
from finops.fleet.models import Node, Site
from finops.insights.models import Finding
from finops.pricing.models import PriceRate

pytestmark = pytest.mark.django_db


def _entries(client, **params):  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/audit", params)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_changes_are_recorded_with_who_and_when(client, root, team_a, alice):
    client.force_login(root)
    before = datetime.now(UTC) - timedelta(seconds=1)
    # Alert rules, channels and silences through the API, signed in.
    channel = client.post("/api/v1/channels", {"name": "ops", "kind": "email",
                          "target": "ops@example.com"}, content_type="application/json")  # fmt: skip
    assert channel.status_code == 201, channel.content
    rule = client.post("/api/v1/alert-rules", {"name": "hot", "kind": "thermal_throttling",
                       "threshold": 0.1, "resolve_threshold": 0.05},
                       content_type="application/json")  # fmt: skip
    assert rule.status_code == 201, rule.content
    changed = client.patch(f"/api/v1/alert-rules/{rule.json()['id']}", {"threshold": 0.2},
                           content_type="application/json")  # fmt: skip
    assert changed.status_code == 200, changed.content
    silence = client.post("/api/v1/silences", {"matchers": {"node": "gpu-a1"},
                          "starts_at": "2026-12-01T10:00:00Z", "ends_at": "2026-12-01T11:00:00Z"},
                          content_type="application/json")  # fmt: skip
    assert silence.status_code == 201, silence.content
    # A finding's status, a Kubernetes mapping, a node's price override, a subscription.
    now = datetime.now(UTC)
    finding = Finding.objects.create(pattern="idle_capacity", scope_kind="node", scope_key="n",
                                     window_start=now - timedelta(hours=1), window_end=now,
                                     first_seen_at=now,
                                     last_seen_at=now, dedup_key="idle:n")  # fmt: skip
    judged = client.patch(f"/api/v1/findings/{finding.pk}", {"status": "acknowledged"},
                          content_type="application/json")  # fmt: skip
    assert judged.status_code == 200, judged.content
    mapped = client.post("/api/v1/kubernetes/mappings", {"namespace": "render", "team": "studio-a"},
                         content_type="application/json")  # fmt: skip
    assert mapped.status_code == 201, mapped.content
    node = Node.objects.create(site=Site.objects.create(slug="lab", provider="on-prem"),
                               hostname="gpu-a1")  # fmt: skip
    admin_change = client.post(
        f"/admin/fleet/node/{node.pk}/change/",
        {"site": node.site_id, "hostname": "gpu-a1", "instance_type": "", "pricing_model": "on-prem",
         "interconnect": "pcie", "price_override_per_gpu_hour": "2.50", "currency": "USD",
         "gpus-TOTAL_FORMS": "0", "gpus-INITIAL_FORMS": "0"},
    )  # fmt: skip
    assert admin_change.status_code == 302, [
        line for line in admin_change.content.decode().splitlines() if "error" in line
    ]
    subscribed = client.post("/reports/", {"team": "studio-a", "weekday": "0", "hour": "7",
                             "timezone": "UTC", "email": "root@example.com"})  # fmt: skip
    assert subscribed.status_code == 302
    # Keys and memberships (services, as the admin and the commands call them).
    key, _ = api_key_create(name="farm", scopes=["ingest:write"], team=team_a)
    api_key_revoke(api_key=key)
    membership_set(user=alice, team=team_a, role=Role.FINANCE)
    PriceRate.objects.create(provider="aws", sku="p5.48xlarge", region="us-east-1",
                             pricing_model="on-demand", gpus_per_unit=8,
                             price_per_unit_hour=Decimal(32), price_per_gpu_hour=Decimal(4),
                             valid_from=now, source="csv")  # fmt: skip

    entries = _entries(client, since=before.isoformat())
    by_type = {}
    for e in entries:
        by_type.setdefault(e["object_type"], []).append(e)
    assert set(by_type) >= {
        "alerts.channel", "alerts.alertrule", "alerts.silence", "insights.finding",
        "jobs.kubernetesmapping", "fleet.node", "reports.reportsubscription", "accounts.apikey",
        "accounts.membership", "pricing.pricerate",
    }  # fmt: skip
    threshold = next(e for e in by_type["alerts.alertrule"] if e["action"] == "update")
    assert threshold["actor"] == "root"
    assert threshold["changes"]["threshold"] == ["0.1", "0.2"]
    (status,) = [e for e in by_type["insights.finding"] if e["action"] == "update"]
    assert (status["actor"], status["changes"]["status"]) == ("root", ["open", "acknowledged"])
    (override,) = [e for e in by_type["fleet.node"] if e["action"] == "update"]
    assert override["actor"] == "root"
    assert override["changes"]["price_override_per_gpu_hour"] == ["None", "2.50"]
    revoked = [e for e in by_type["accounts.apikey"] if "revoked_at" in e["changes"]]
    assert revoked and revoked[0]["actor"] is None  # a service call, no person behind it
    assert all("digest" not in e["changes"] for e in by_type["accounts.apikey"])
    channel_entry = by_type["alerts.channel"][0]
    assert "ops@example.com" not in str(channel_entry["changes"])  # a webhook URL is masked
    # Filters and the CSV export.
    only_rules = _entries(client, object_type="alerts.alertrule")
    assert {e["object_type"] for e in only_rules} == {"alerts.alertrule"}
    assert _entries(client, actor="nobody") == []
    exported = client.get("/api/v1/audit", {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
    assert len(rows) == LogEntry.objects.count()
    bad = client.get("/api/v1/audit", {"object_type": "auth.user"})
    assert bad.status_code == 400 and "object_type" in bad.json()["extra"]["fields"]
    # The admin shows it.
    assert client.get("/admin/auditlog/logentry/").status_code == 200


def test_unsubscribing_by_link_is_recorded(client, root, team_a):
    from finops.reports.models import ReportSubscription
    from finops.reports.services import unsubscribe, unsubscribe_url

    subscription = ReportSubscription.objects.create(user=root, email="r@example.com", team=team_a)
    token = unsubscribe_url(subscription).rstrip("/").rsplit("/", 1)[1]
    assert unsubscribe(token)[0] == "done"
    entry = LogEntry.objects.get_for_object(subscription).filter(action=LogEntry.Action.UPDATE)
    assert entry.get().changes_dict == {"enabled": ["True", "False"]}


def test_only_admins_read_the_audit_trail(client, api, alice, fiona, make_key, root):
    for person in (alice, fiona):
        client.force_login(person)
        assert client.get("/api/v1/audit").status_code == 403
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('read', 'billing:read')}")
    assert api.get("/api/v1/audit").status_code == 403
    client.force_login(root)
    assert client.get("/api/v1/audit").status_code == 200
