from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from finops.accounts.models import ApiKey
from finops.accounts.services import api_key_authenticate, api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db


def test_database_holds_no_plaintext_key(team_a):
    key, raw_key = api_key_create(name="farm-1", scopes=["ingest:write"], team=team_a)
    assert raw_key.startswith("fo_")
    assert len(raw_key) > 30
    assert raw_key not in key.digest
    assert key.prefix == raw_key[:11]
    # Look at every text column of the row as the database stores it.
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey WHERE id = %s", [key.pk])
        row = cursor.fetchone()
    stored = " ".join(str(value) for value in row)
    assert raw_key not in stored
    assert raw_key[11:] not in stored  # not even the secret part


def test_authenticate_finds_key_and_marks_it_used():
    key, raw_key = api_key_create(name="agent", scopes=["ingest:write"])
    assert key.last_used_at is None
    found = api_key_authenticate(raw_key=raw_key)
    assert found is not None
    assert found.pk == key.pk
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_last_used_is_written_at_most_once_a_minute():
    key, raw_key = api_key_create(name="agent", scopes=["read"])
    api_key_authenticate(raw_key=raw_key)
    key.refresh_from_db()
    first = key.last_used_at
    api_key_authenticate(raw_key=raw_key)
    key.refresh_from_db()
    assert key.last_used_at == first


def test_wrong_and_revoked_keys_do_not_authenticate():
    key, raw_key = api_key_create(name="agent", scopes=["read"])
    assert api_key_authenticate(raw_key=raw_key + "x") is None
    assert api_key_authenticate(raw_key="not-a-frameops-key") is None
    api_key_revoke(api_key=key)
    assert api_key_authenticate(raw_key=raw_key) is None


def test_unknown_scope_is_refused_naming_it():
    with pytest.raises(ValidationError) as excinfo:
        api_key_create(name="x", scopes=["read", "admin:everything"])
    assert "admin:everything" in str(excinfo.value.message_dict["scopes"])
    assert not ApiKey.objects.exists()


def test_create_api_key_command_prints_the_key_once(team_a):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_api_key",
        "--name=farm-1",
        "--scope=ingest:write,read",
        "--team=studio-a",
        stdout=out,
        stderr=err,
    )
    raw_key = out.getvalue().strip()
    key = api_key_authenticate(raw_key=raw_key)
    assert key is not None
    assert sorted(key.scopes) == ["ingest:write", "read"]
    assert key.team == team_a
    assert "not shown again" in err.getvalue()


def test_create_api_key_command_rejects_unknown_team_and_scope():
    with pytest.raises(CommandError, match="--team"):
        call_command("create_api_key", "--name=x", "--scope=read", "--team=nope")
    with pytest.raises(CommandError, match="--scope"):
        call_command("create_api_key", "--name=x", "--scope=write-all")


def test_revoke_command_revokes_by_prefix():
    key, raw_key = api_key_create(name="agent", scopes=["read"])
    call_command("revoke_api_key", key.prefix, stdout=io.StringIO())
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert key.revoked_at <= timezone.now()
    assert api_key_authenticate(raw_key=raw_key) is None


def test_ensure_admin_creates_one_superuser_with_a_working_password(django_user_model):
    out = io.StringIO()
    call_command("ensure_admin", stdout=out)
    password = out.getvalue().split("one-time password: ")[1].split()[0]
    admin = django_user_model.objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password(password)
    again = io.StringIO()
    call_command("ensure_admin", stdout=again)
    assert "nothing created" in again.getvalue()
    assert django_user_model.objects.filter(is_superuser=True).count() == 1
