"""The isolation matrix: every route of the URL configuration, read (GET) by every persona
(anonymous; viewer, manager and finance of studio-a; an admin; a key of each scope; a key
restricted to studio-b), answers the status documented below, and no response to a
studio-a person carries a studio-b value or a fleet-wide finding or alert: not the page,
not the CSVs it links, not the API. Routes point at studio-b's objects, so a team-A person
is asking for another team's data. A route without an entry here fails the test.

The roles (docs/api.md "Who sees what"): viewer and manager see their teams; finance sees
every team's costs, read-only; admins see and change everything. Another team's object is
a 404, a missing scope a 403, missing credentials a 401 (API) or the sign-in page (pages).
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urljoin

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from finops.accounts.models import Role
from finops.accounts.services import api_key_create, membership_set
from finops.alerts.models import Alert, AlertRule, AlertState, Channel
from finops.costing.engine import ledger_recompute
from finops.insights.models import Finding
from finops.jobs.models import KubernetesMapping, RenderJob
from tests.costing import scenario
from tests.url_routes import route_path, routes

pytestmark = pytest.mark.django_db

PERSONAS = ("anon", "viewer_a", "manager_a", "finance_a", "admin",
            "key_ingest", "key_read", "key_billing", "key_b")  # fmt: skip
TEAM_A_PEOPLE = ("viewer_a", "manager_a")
WINDOW = "2026-11-02T10:00:00Z,2026-11-02T12:00:00Z"
B_VALUES = ("studio-b", "Studio B")
A_VALUES = ("studio-a", "Studio A")
FLEET_MARKERS = ("FLEET-FINDING-MARKER", "FLEET-ALERT-MARKER")
# The API schema and its docs are the same text for everyone (their examples name teams).
SAME_FOR_EVERYONE = {"schema", "api-docs"}


def _s(anon, viewer, manager, finance, admin, ingest, read, billing, key_b):  # type: ignore[no-untyped-def]
    return dict(zip(PERSONAS, (anon, viewer, manager, finance, admin, ingest, read, billing, key_b),
                    strict=True))  # fmt: skip


# Shapes shared by many routes.
OPEN = _s(*[200] * 9)
ANY_KEY = _s(401, 200, 200, 200, 200, 200, 200, 200, 200)
READ_OR_BILLING = _s(401, 200, 200, 200, 200, 403, 200, 200, 200)
READ = _s(401, 200, 200, 200, 200, 403, 200, 403, 200)
BILLING = _s(401, 403, 403, 200, 200, 403, 403, 200, 200)
# A studio-b object: team-A people get 404, finance and admins and unrestricted keys see it.
B_OBJECT = _s(401, 404, 404, 200, 200, 403, 200, 200, 200)
B_OBJECT_READ = _s(401, 404, 404, 200, 200, 403, 200, 403, 200)
B_BILLING = _s(401, 403, 403, 200, 200, 403, 403, 200, 200)
INGEST_ONLY = _s(401, 403, 403, 403, 405, 405, 403, 403, 403)
# Pages: people only (keys are for the API: a page read with a key is a sign-in redirect).
PAGE = _s(302, 200, 200, 200, 200, 302, 302, 302, 302)
FLEET_PAGE = _s(302, 403, 403, 200, 200, 302, 302, 302, 302)
B_PAGE = _s(302, 404, 404, 200, 200, 302, 302, 302, 302)
POST_ONLY_PAGE = _s(302, 405, 405, 405, 405, 302, 302, 302, 302)
# Kubernetes namespaces of every team: for callers who see every team.
EVERY_TEAM = _s(401, 403, 403, 200, 200, 403, 200, 200, 403)

# route name -> (query string, expected status per persona)
EXPECTED: dict[str, tuple[str, dict[str, int]]] = {
    "health": ("", OPEN),
    "metrics": ("", OPEN),  # FrameOps' own counters, no team data (no token set)
    # Every team's costs: the token, or finance and admins signed in.
    "cost-metrics": ("", _s(401, 403, 403, 200, 200, 401, 401, 401, 401)),
    "api:whoami": ("", ANY_KEY),
    "api:audit": ("", _s(401, 403, 403, 403, 200, 403, 403, 403, 403)),
    "api:team-list": ("", READ_OR_BILLING),
    "api:team-detail": ("", B_OBJECT),
    "api:gpu-model-list": ("", READ_OR_BILLING),
    "api:allocation": (f"window={WINDOW}&aggregate=team", READ_OR_BILLING),
    "api:export-focus": ("start=2026-11-02T10:00:00Z&end=2026-11-02T12:00:00Z", BILLING),
    "api:team-invoice": ("period=2026-11", B_BILLING),
    "api:jobs": ("", READ),
    "api:jobs-bulk": ("", INGEST_ONLY),
    "api:job-detail": ("", B_OBJECT_READ),
    "api:findings": ("", READ_OR_BILLING),
    "api:finding-detail": ("", B_OBJECT),
    "api:savings": ("", READ_OR_BILLING),
    "api:savings-statement": ("period=2026-11", READ_OR_BILLING),
    "api:placement": (f"window={WINDOW}", READ_OR_BILLING),
    "api:funnel": (f"window={WINDOW}&by=team", READ_OR_BILLING),
    "api:placement-mappings": ("", READ_OR_BILLING),
    # Mappings are removed (DELETE, admins signed in); a GET is no method of theirs.
    "api:placement-mapping": ("", _s(401, 405, 405, 405, 405, 403, 405, 405, 405)),
    "api:alerts": ("", READ_OR_BILLING),
    "api:alert-rules": ("", READ_OR_BILLING),
    "api:alert-rule": ("", B_OBJECT),
    "api:silences": ("", READ_OR_BILLING),
    "api:channels": ("", READ_OR_BILLING),
    "api:channel-test": ("", _s(401, 405, 405, 405, 405, 403, 405, 405, 405)),
    "api:kubernetes-mappings": ("", EVERY_TEAM),
    "api:kubernetes-unmapped": ("", EVERY_TEAM),
    "api:pricing-resolve": ("node=lab-b", READ_OR_BILLING),
    "api:node-register": ("", INGEST_ONLY),
    "api:ingest-gpu-samples": ("", INGEST_ONLY),
    "api:ingest-gpu-minutes": ("", INGEST_ONLY),
    "api:ingest-storage-samples": ("", INGEST_ONLY),
    "schema": ("", OPEN),
    "api-docs": ("", OPEN),
    "reports:subscriptions": ("", PAGE),
    "reports:subscription-change": ("", POST_ONLY_PAGE),
    "reports:preview": ("", PAGE),
    "reports:unsubscribe": ("", _s(*[400] * 9)),  # a bad token, whoever follows it
    "dashboard:overview": (f"window={WINDOW}", PAGE),
    "dashboard:findings": ("status=all&window=2026-11-01T00:00:00Z,2026-11-03T00:00:00Z", PAGE),
    "dashboard:finding-judge": ("", POST_ONLY_PAGE),
    "dashboard:savings-statement": ("period=2026-11", PAGE),
    "dashboard:planner": ("", PAGE),
    "dashboard:placement": (f"window={WINDOW}", PAGE),
    "dashboard:fleet": (f"window={WINDOW}", FLEET_PAGE),
    "dashboard:node": (f"window={WINDOW}", FLEET_PAGE),
    "dashboard:team": (f"window={WINDOW}", B_PAGE),
    "dashboard:login": ("", OPEN),
    "dashboard:logout": ("", _s(*[405] * 9)),  # signing out is a POST
}


@pytest.fixture
def world(team_a, team_b):  # type: ignore[no-untyped-def]
    """The hand-checked scenario (both teams' jobs and costs) plus a finding, an alert rule
    and alert, a channel and a Kubernetes mapping of studio-b's, and a fleet-wide finding
    and alert carrying markers."""
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    now = scenario.T12
    common = {"window_start": scenario.T10, "window_end": now, "first_seen_at": now,
              "last_seen_at": now, "severity": "warning", "recommendation": ""}  # fmt: skip
    Finding.objects.create(pattern="regeneration_waste", scope_kind="team", scope_key="studio-a",
                           team=team_a, dedup_key="a", **common)  # fmt: skip
    b_finding = Finding.objects.create(pattern="regeneration_waste", scope_kind="team",
                                       scope_key="studio-b", team=team_b, dedup_key="b",
                                       **common)  # fmt: skip
    Finding.objects.create(pattern="idle_capacity", scope_kind="node", scope_key="gpu-a",
                           dedup_key="fleet", **{**common, "recommendation": FLEET_MARKERS[0]})  # fmt: skip
    b_rule = AlertRule.objects.create(name="studio-b thermal", kind="thermal_throttling",
                                      threshold=0.05, team=team_b)  # fmt: skip
    fleet_rule = AlertRule.objects.create(name=FLEET_MARKERS[1], kind="telemetry_stale",
                                          threshold=300)  # fmt: skip
    for rule, key in ((b_rule, "thermal:GPU-A0"), (fleet_rule, "stale:GPU-A1")):
        Alert.objects.create(rule=rule, dedup_key=key, state=AlertState.FIRING,
                             labels={"gpu": key.split(":")[1], "marker": rule.name},
                             pending_since=now - timedelta(minutes=5), fired_at=now,
                             last_evaluated_at=now)  # fmt: skip
    Channel.objects.create(name="studio-b pager", kind="email", target="b@example.com",
                                     team=team_b)  # fmt: skip
    KubernetesMapping.objects.create(namespace="studio-b-render", team=team_b)
    b_job = RenderJob.objects.filter(team=team_b).first()
    return {"slug": "studio-b", "pk": str(b_finding.pk), "source": b_job.source,
            "external_id": b_job.external_id, "hostname": "lab-b", "token": "not-a-token"}  # fmt: skip


def _pk_for(route_name: str, values: dict[str, str]) -> dict[str, str]:
    if route_name == "api:alert-rule":
        return {**values, "pk": str(AlertRule.objects.get(name="studio-b thermal").pk)}
    if route_name == "api:channel-test":
        return {**values, "pk": str(Channel.objects.get(name="studio-b pager").pk)}
    return values


def _client(persona: str, team_a, team_b):  # type: ignore[no-untyped-def]
    client = APIClient()
    users = get_user_model().objects
    roles = {"viewer_a": Role.VIEWER, "manager_a": Role.MANAGER, "finance_a": Role.FINANCE}
    if persona in roles:
        user = users.create_user(persona, f"{persona}@example.com", "pw-persona-1")
        membership_set(user=user, team=team_a, role=roles[persona])
        client.force_login(user)
    elif persona == "admin":
        user = users.create_user("admin", "admin@example.com", "pw-persona-1", is_staff=True)
        membership_set(user=user, team=team_a, role=Role.ADMIN)
        client.force_login(user)
    elif persona.startswith("key_"):
        scopes = {"key_ingest": ["ingest:write"], "key_read": ["read"],
                  "key_billing": ["billing:read"], "key_b": ["read", "billing:read"]}[persona]  # fmt: skip
        _, raw = api_key_create(name=persona, scopes=scopes,
                                team=team_b if persona == "key_b" else None)  # fmt: skip
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def _body(response) -> str:  # type: ignore[no-untyped-def]
    if response.get("Content-Type") == "application/vnd.apache.parquet":
        import io
        import json

        import pyarrow.parquet as pq

        return json.dumps(pq.read_table(io.BytesIO(response.content)).to_pylist(), default=str)
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def _leaks(persona: str, text: str) -> list[str]:
    if persona in TEAM_A_PEOPLE:
        return [v for v in (*B_VALUES, *FLEET_MARKERS) if v in text]
    if persona == "key_b":
        return [v for v in (*A_VALUES, *FLEET_MARKERS) if v in text]
    return []


def test_every_route_has_an_entry():
    names = {r.name for r in routes()}
    assert names - set(EXPECTED) == set(), "new routes need an entry in EXPECTED"
    assert set(EXPECTED) - names == set(), "entries for routes that no longer exist"


def test_every_persona_gets_the_documented_status_and_nothing_of_another_team(
    world, team_a, team_b, settings
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"burst": "100000/min", "sustained": "1000000/day"},
    }
    got: dict[tuple[str, str], int] = {}
    leaks: list[str] = []
    csv_links = 0
    for persona in PERSONAS:
        client = _client(persona, team_a, team_b)
        for route in routes():
            query = EXPECTED[route.name][0]
            path = route_path(route, _pk_for(route.name, world))
            url = f"{path}?{query}" if query else path
            response = client.get(url)
            got[(route.name, persona)] = response.status_code
            text = _body(response)
            if route.name not in SAME_FOR_EVERYONE:
                leaks += [f"{persona} {path}: {v}" for v in _leaks(persona, text)]
            # Every CSV and Parquet file a page links to carries the same rule.
            for link in set(re.findall(r'href="([^"]*format=(?:csv|parquet)[^"]*)"', text)):
                csv = client.get(urljoin(url, link.replace("&amp;", "&")))
                csv_links += 1
                assert csv.status_code == 200, (persona, link)
                leaks += [f"{persona} {link}: {v}" for v in _leaks(persona, _body(csv))]
    wrong = {
        key: (status, EXPECTED[key[0]][1][key[1]])
        for key, status in got.items()
        if status != EXPECTED[key[0]][1][key[1]]
    }
    assert wrong == {}, "(route, persona): (got, documented)"
    assert leaks == []
    assert csv_links > 20  # the pages' tables were downloaded too


def test_fleet_wide_findings_and_alerts_reach_every_team_reader_but_no_team_person(
    world, team_a, team_b
):
    """The markers are really there for those who may see them, so the absence above means
    something."""
    for persona, sees in (("finance_a", True), ("admin", True), ("manager_a", False),
                          ("viewer_a", False)):  # fmt: skip
        client = _client(persona, team_a, team_b)
        findings = _body(client.get("/api/v1/findings"))
        alerts = _body(client.get("/api/v1/alerts"))
        page = _body(
            client.get("/findings/?status=all&window=2026-11-01T00:00:00Z,2026-11-03T00:00:00Z")
        )
        overview = _body(client.get("/"))
        assert (FLEET_MARKERS[0] in findings) is sees, persona
        assert (FLEET_MARKERS[1] in alerts) is sees, persona
        assert (FLEET_MARKERS[0] in page) is sees, persona
        assert (FLEET_MARKERS[1] in overview) is sees, persona
