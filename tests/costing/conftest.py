"""The hand-checked scenario, costed, with a billing key: shared by the API tests."""

from __future__ import annotations

import pytest

from finops.costing.engine import ledger_recompute
from tests.costing import scenario


@pytest.fixture
def billing(api, make_key, team_a, team_b):  # type: ignore[no-untyped-def]
    scenario.build(team_a, team_b)
    ledger_recompute(start=scenario.T10, end=scenario.T12)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('billing:read')}")
    return api
