"""Shared set-up for benchmarks: a throw-away PostgreSQL database, migrated, dropped after."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "postgres://root@127.0.0.1:5432/frameops_bench"


@contextmanager
def bench_database(name: str) -> Iterator[str]:
    """Create ``frameops_bench_<name>``, point Django at it, migrate; drop it afterwards."""
    base = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    parts = urlsplit(base)
    db_name = f"{parts.path.lstrip('/')}_{name}"
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}"')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    url = urlunsplit(parts._replace(path=f"/{db_name}"))
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")
    sys.path.insert(0, str(ROOT))
    try:
        import django
        from django.core.management import call_command

        django.setup()
        from django.db import connections

        # A second database in the same run (one per mode): point the connection at it.
        connections.close_all()
        connections["default"].settings_dict["NAME"] = db_name
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        print(f"database {db_name} migrated in {time.perf_counter() - started:.1f} s", flush=True)
        yield url
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


@contextmanager
def timed(label: str, results: dict[str, float]) -> Iterator[None]:
    started = time.perf_counter()
    yield
    results[label] = time.perf_counter() - started
    print(f"  {label}: {results[label]:.2f} s", flush=True)
