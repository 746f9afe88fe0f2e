"""Sign-in and request hardening as a person or client meets it: throttled sign-in on the
dashboard and the admin with a lock-out that can be lifted, sessions that expire, a
Content-Security-Policy on every page, chunked bodies held to the size limit under
gunicorn."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.core.management import call_command

from tests.gunicorn_server import database_url, gunicorn

pytestmark = pytest.mark.django_db


def _sign_in(client, path: str, username: str, password: str, address: str = "127.0.0.2"):  # type: ignore[no-untyped-def]
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_sign_in_is_throttled_per_account_with_a_clear_message(client, root, settings, path):
    assert settings.AXES_FAILURE_LIMIT == 5
    for attempt in range(4):
        refused = _sign_in(client, path, "root", f"wrong-{attempt}")
        assert refused.status_code == 200  # the form again, with its error
    # The fifth failure in a row locks the account, and says so.
    assert _sign_in(client, path, "root", "wrong-5").status_code == 429
    locked = _sign_in(client, path, "root", "pw-root-1")  # right, but too late
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed sign-ins" in page and "axes_reset_username root" in page
    assert "_auth_user_id" not in client.session
    # The same account from another address is locked too (per account).
    assert _sign_in(client, path, "root", "pw-root-1", "127.0.0.3").status_code == 429
    call_command("axes_reset_username", "root")
    signed_in = _sign_in(client, path, "root", "pw-root-1")
    assert signed_in.status_code == 302 and "_auth_user_id" in client.session


def test_sign_in_is_throttled_per_address(client, alice, bob):
    # A spray over several accounts from one address stops at the limit too.
    for attempt in range(4):
        name = ("alice", "bob", "nobody")[attempt % 3]
        assert _sign_in(client, "/login/", name, "guess", "127.0.0.9").status_code == 200
    assert _sign_in(client, "/login/", "nobody", "guess", "127.0.0.9").status_code == 429
    assert _sign_in(client, "/login/", "bob", "pw-bob-1", "127.0.0.9").status_code == 429
    # Another address, and the account itself, are not locked by it.
    assert _sign_in(client, "/login/", "bob", "pw-bob-1", "127.0.0.10").status_code == 302


def test_sessions_expire_after_the_documented_age(client, alice, settings):
    assert settings.SESSION_COOKIE_AGE == 12 * 3600
    assert settings.SESSION_EXPIRE_AT_BROWSER_CLOSE
    client.force_login(alice)
    assert client.get("/").status_code == 200
    client.session.set_expiry(-1)  # what 12 hours do: the stored session is past its age
    session = client.session
    session.set_expiry(datetime.now(UTC) - timedelta(seconds=1))
    session.save()
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("path", ["/", "/login/", "/api/docs/", "/admin/login/", "/health/"])
def test_every_page_carries_a_policy_without_inline_scripts(client, alice, path):
    client.force_login(alice)
    response = client.get(path)
    policy = dict(
        d.strip().split(" ", 1) for d in response["Content-Security-Policy"].split(";") if d.strip()
    )
    assert policy["script-src"] == "'self'"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'none'"


@pytest.mark.django_db(transaction=True)
def test_chunked_bodies_are_held_to_the_size_limit_under_gunicorn(settings, make_key, team_a):
    key = make_key("ingest:write")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    env = {"DATABASE_URL": database_url(settings.DATABASES), "MAX_REQUEST_BYTES": "4096"}
    node = {"hostname": "gpu-c1", "site": "lab", "provider": "on-prem",
            "gpus": [{"uuid": "GPU-C0", "index": 0, "model": "NVIDIA L4"}]}  # fmt: skip

    def chunks(body: bytes, size: int = 512):  # type: ignore[no-untyped-def]
        # A generator body: requests sends it chunked, with no Content-Length.
        for i in range(0, len(body), size):
            yield body[i : i + size]

    with gunicorn(env) as url:
        ok = requests.post(f"{url}/api/v1/nodes", data=chunks(json.dumps(node).encode()),
                           headers=headers, timeout=30)  # fmt: skip
        assert ok.status_code == 201, ok.text  # a chunked body within the limit is read whole
        sample = {"gpu_uuid": "GPU-C0", "ts": datetime.now(UTC).isoformat(), "sm_util_pct": 1}
        big = ("\n".join([json.dumps(sample)] * 200)).encode()
        assert len(big) > 4096
        refused = requests.post(f"{url}/api/v1/ingest/gpu-samples", data=chunks(big),
                                headers=headers, timeout=30)  # fmt: skip
        assert refused.status_code == 413, refused.text
        assert refused.json()["extra"]["limit_bytes"] == 4096
        assert "Chunked request body" in refused.json()["message"]
        # Declared lengths are held to the same limit.
        declared = requests.post(f"{url}/api/v1/ingest/gpu-samples", data=big,
                                 headers=headers, timeout=30)  # fmt: skip
        assert declared.status_code == 413
