"""Personas shared by the suite.

studio-a and studio-b are two teams. alice manages studio-a, fiona is finance on studio-a,
bob is a viewer on studio-b, and root is a superuser. ``make_key`` issues real API keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient

from finops.accounts.models import Role, Team
from finops.accounts.services import api_key_create, membership_set, team_create
from tests.live_server import LiveServer, live_frameops

# Property tests draw the same examples on every run: a failure reproduces, and CI does not
# depend on what a random seed happened to find.
hypothesis_settings.register_profile("frameops", derandomize=True, print_blob=True)
hypothesis_settings.load_profile("frameops")


@pytest.fixture(autouse=True, scope="session")
def _require_postgresql() -> None:
    # The suite checks guarantees PostgreSQL gives; refuse to pass on SQLite.
    assert connection.vendor == "postgresql", "tests must run against PostgreSQL: set DATABASE_URL"


@pytest.fixture
def gpu_catalog(db: None) -> None:
    """The GPU catalog as the migrations seed it: a transactional test before this one
    flushed every table, the catalog included."""
    from finops.fleet.models import GpuModel
    from finops.fleet.services import gpu_model_catalog_sync

    gpu_model_catalog_sync(gpu_model_cls=GpuModel)


@pytest.fixture
def team_a(db: None) -> Team:
    return team_create(slug="studio-a", name="Studio A", monthly_budget=50_000)


@pytest.fixture
def team_b(db: None) -> Team:
    return team_create(slug="studio-b", name="Studio B")


@pytest.fixture
def alice(team_a: Team):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user("alice", "alice@studio-a.example", "pw-alice-1")
    membership_set(user=user, team=team_a, role=Role.MANAGER)
    return user


@pytest.fixture
def fiona(team_a: Team):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user("fiona", "fiona@studio-a.example", "pw-fiona-1")
    membership_set(user=user, team=team_a, role=Role.FINANCE)
    return user


@pytest.fixture
def bob(team_b: Team):  # type: ignore[no-untyped-def]
    user = get_user_model().objects.create_user("bob", "bob@studio-b.example", "pw-bob-1")
    membership_set(user=user, team=team_b, role=Role.VIEWER)
    return user


@pytest.fixture
def root(db: None):  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-1")


@pytest.fixture
def make_key(db: None) -> Callable[..., str]:
    def make(*scopes: str, team: Team | None = None, name: str = "test key") -> str:
        _, raw_key = api_key_create(name=name, scopes=scopes or ("read",), team=team)
        return raw_key

    return make


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    # Throttle counters live in the cache; each test starts with a clean budget.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def server(settings) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """FrameOps on a loopback port (use with django_db(transaction=True)). A transactional
    test before this one flushed every table, the GPU catalog the migrations seed included:
    it is seeded again, as a fresh installation has it."""
    from finops.fleet.models import GpuModel
    from finops.fleet.services import gpu_model_catalog_sync

    gpu_model_catalog_sync(gpu_model_cls=GpuModel)
    yield from live_frameops(settings)
