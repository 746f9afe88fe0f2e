from __future__ import annotations

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_oversized_body_is_413_json_naming_the_limit(api, make_key):
    key = make_key("read")
    response = api.post(
        "/api/v1/teams",
        data="x" * 2048,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {key}",
    )
    assert response.status_code == 413
    body = response.json()
    assert body["extra"] == {"limit_bytes": 1024, "content_length": 2048}
    assert "1024-byte limit" in body["message"]


def test_burst_throttle_is_per_key_with_retry_hint(api, make_key, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"burst": "2/min", "sustained": "100/day"},
    }
    first, second = make_key("read", name="one"), make_key("read", name="two")
    for _ in range(2):
        assert api.get("/api/v1/teams", HTTP_AUTHORIZATION=f"Bearer {first}").status_code == 200
    throttled = api.get("/api/v1/teams", HTTP_AUTHORIZATION=f"Bearer {first}")
    assert throttled.status_code == 429
    assert throttled.json()["message"] == "Too many requests."
    assert 0 < throttled.json()["extra"]["retry_after_s"] <= 60
    # Another key has its own budget.
    assert api.get("/api/v1/teams", HTTP_AUTHORIZATION=f"Bearer {second}").status_code == 200
