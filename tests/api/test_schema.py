from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_openapi_schema_lists_the_public_endpoints(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    for path in ("/api/v1/allocation", "/api/v1/jobs", "/api/v1/ingest/gpu-samples", "/api/v1/nodes",
                 "/api/v1/export/focus", "/api/v1/pricing/resolve"):  # fmt: skip
        assert path in schema["paths"], path


def test_docs_ui_is_served_offline(client):
    response = client.get("/api/docs/")
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn." not in page and "unpkg" not in page and "jsdelivr" not in page
    # Every script is a file of this server (the CSP refuses inline scripts).
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert "<script>" not in page.replace(" ", "")
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()
