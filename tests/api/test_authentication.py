from __future__ import annotations

import pytest

from finops.accounts.models import ApiKey

pytestmark = pytest.mark.django_db


def _bearer(key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {key}"}


def _assert_error_shape(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"message", "extra"}
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


def test_no_credentials_is_401_json(api):
    body = _assert_error_shape(api.get("/api/v1/teams"), 401)
    assert "Bearer" in body["message"]


def test_wrong_key_is_401_json(api, make_key):
    make_key("read")
    body = _assert_error_shape(api.get("/api/v1/teams", **_bearer("fo_wrongwrongwrong")), 401)
    assert "Invalid" in body["message"]


def test_malformed_authorization_header_is_401(api, make_key):
    key = make_key("read")
    _assert_error_shape(api.get("/api/v1/teams", HTTP_AUTHORIZATION=f"Token {key}"), 401)
    _assert_error_shape(api.get("/api/v1/teams", HTTP_AUTHORIZATION="Bearer "), 401)


def test_revoked_key_is_401(api, make_key):
    key = make_key("read")
    assert api.get("/api/v1/teams", **_bearer(key)).status_code == 200
    ApiKey.objects.update(revoked_at="2026-01-01T00:00:00Z")
    _assert_error_shape(api.get("/api/v1/teams", **_bearer(key)), 401)


def test_out_of_scope_key_is_403_naming_the_scope(api, make_key):
    key = make_key("ingest:write")
    body = _assert_error_shape(api.get("/api/v1/teams", **_bearer(key)), 403)
    assert "read" in body["message"]
    assert "ingest:write" in body["message"]


def test_team_restricted_key_sees_only_its_team(api, make_key, team_a, team_b):
    key = make_key("read", team=team_a)
    listing = api.get("/api/v1/teams", **_bearer(key)).json()
    assert [t["slug"] for t in listing["results"]] == ["studio-a"]
    assert api.get("/api/v1/teams/studio-a", **_bearer(key)).status_code == 200
    # Another team's existence is not revealed.
    _assert_error_shape(api.get("/api/v1/teams/studio-b", **_bearer(key)), 404)


def test_unrestricted_key_sees_all_teams(api, make_key, team_a, team_b):
    key = make_key("billing:read")
    listing = api.get("/api/v1/teams", **_bearer(key)).json()
    assert [t["slug"] for t in listing["results"]] == ["studio-a", "studio-b"]


def test_whoami_reports_the_key(api, make_key, team_a):
    key = make_key("ingest:write", "read", team=team_a, name="farm-1")
    body = api.get("/api/v1/whoami", **_bearer(key)).json()
    assert body["kind"] == "api_key"
    assert body["name"].startswith("farm-1 (fo_")
    assert body["scopes"] == ["ingest:write", "read"]
    assert body["team"] == "studio-a"


def test_session_users_get_scopes_from_roles(api, alice, bob, fiona, team_a, team_b):
    api.force_login(alice)
    assert [t["slug"] for t in api.get("/api/v1/teams").json()["results"]] == ["studio-a"]
    assert api.get("/api/v1/whoami").json()["scopes"] == ["read"]
    api.force_login(bob)
    assert [t["slug"] for t in api.get("/api/v1/teams").json()["results"]] == ["studio-b"]
    api.force_login(fiona)
    assert api.get("/api/v1/whoami").json()["scopes"] == ["billing:read", "read"]


def test_superuser_sees_everything(api, root, team_a, team_b):
    api.force_login(root)
    assert len(api.get("/api/v1/teams").json()["results"]) == 2
    assert api.get("/api/v1/whoami").json()["scopes"] == ["billing:read", "ingest:write", "read"]


def test_user_without_team_has_no_scopes(api, django_user_model):
    loner = django_user_model.objects.create_user("loner", password="pw-loner-1")
    api.force_login(loner)
    _assert_error_shape(api.get("/api/v1/teams"), 403)


def test_unknown_api_path_is_json_404(api):
    body = _assert_error_shape(api.get("/api/v1/no-such-thing"), 404)
    assert "/api/v1/no-such-thing" in body["message"]


def test_gpu_model_catalog_is_served(api, make_key):
    key = make_key("read")
    names = [m["name"] for m in api.get("/api/v1/gpu-models", **_bearer(key)).json()["results"]]
    for expected in [
        "H100 SXM",
        "H100 PCIe",
        "H200",
        "A100 40GB",
        "A100 80GB",
        "L40S",
        "L4",
        "A10G",
        "RTX 4090",
        "RTX 5090",
        "B200",
    ]:
        assert expected in names
