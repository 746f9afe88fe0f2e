"""Deep and wide JSON bodies sent to every endpoint of the URL configuration: nesting past
MAX_JSON_DEPTH is a 400 that names the limit wherever a body is read as JSON, wide bodies
are never refused for their depth, and nothing answers 500."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.url_routes import route_path, routes

pytestmark = pytest.mark.django_db

VALUES = {"slug": "studio-a", "pk": "1", "source": "farm", "external_id": "j1",
          "hostname": "gpu-a1", "token": "x"}  # fmt: skip
# Signing out would end the session the other requests use.
ROUTES = [r for r in routes() if r.name != "dashboard:logout"]


def _deep(depth: int, kind: str) -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def _wide(width: int) -> str:
    return json.dumps([{"gpu_uuid": f"GPU-{i}", "n": [i, i]} for i in range(width)])


@pytest.fixture
def admin_client(client, root, team_a, settings):  # type: ignore[no-untyped-def]
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"burst": "100000/min", "sustained": "1000000/day"},
    }
    client.force_login(root)
    return client


def _send(client, body: str):  # type: ignore[no-untyped-def]
    for route in ROUTES:
        path = route_path(route, VALUES)
        for method in ("post", "put", "patch"):
            response = getattr(client, method)(path, body, content_type="application/json")
            yield route, method, response


@given(depth=st.integers(33, 20_000), kind=st.sampled_from(["list", "object"]))
@example(depth=100_000, kind="list")
@example(depth=33, kind="object")
@hsettings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_deep_bodies_are_400_naming_the_limit(admin_client, depth, kind):
    body = _deep(depth, kind)
    for route, method, response in _send(admin_client, body):
        assert response.status_code < 500, (route.pattern, method, response.content[:200])
        if route.is_api and response.status_code not in (404, 405):
            assert response.status_code == 400, (route.pattern, method, response.content[:300])
            text = response.content.decode()
            assert "MAX_JSON_DEPTH=32" in text or "deeper than 32 levels" in text, (
                route.pattern,
                text[:300],
            )


@given(width=st.integers(1, 3000))
@hsettings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_wide_shallow_bodies_are_not_refused_for_depth(admin_client, width):
    body = _wide(width)
    for route, method, response in _send(admin_client, body):
        assert response.status_code < 500, (route.pattern, method, response.content[:200])
        assert "MAX_JSON_DEPTH" not in response.content.decode(), route.pattern


def test_the_bound_is_exact(admin_client):
    at_limit, past = _deep(32, "object"), _deep(33, "object")
    for body, refused in ((at_limit, False), (past, True)):
        response = admin_client.post("/api/v1/jobs", body, content_type="application/json")
        assert response.status_code == 400
        assert ("MAX_JSON_DEPTH" in response.content.decode()) is refused
