from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection


@pytest.mark.django_db
def test_models_and_migrations_agree():
    out = io.StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db
def test_brin_indexes_exist_on_postgresql():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_am a ON a.oid = c.relam "
            "WHERE a.amname = 'brin' AND c.relkind = 'I' ORDER BY 1"  # partitioned indexes
        )
        names = [row[0] for row in cursor.fetchall()]
    # On the partitioned tables (each partition has its own, made from these).
    assert names == ["gpusample_ts_brin", "storagesample_ts_brin"]
