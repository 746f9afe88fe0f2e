"""The simulated studio: written through the services, labelled, found by the detectors
(every injected fault, no decoy), and removed exactly by --clear."""

from __future__ import annotations

import io
import json
from datetime import datetime

import pytest
from django.core.management import call_command

from finops.accounts.models import Team
from finops.costing.models import LedgerEntry
from finops.fleet.models import Node, Site
from finops.insights.services import drafts_detect
from finops.jobs.models import RenderJob
from finops.pricing.models import VideoApiOffering
from finops.simulation.studio import studio_simulate

pytestmark = pytest.mark.django_db


def _keys(items):  # type: ignore[no-untyped-def]
    return {(f["pattern"], f["scope_kind"], f["scope_key"]) for f in items}


def test_every_fault_is_found_no_decoy_fires_and_clear_removes_only_the_simulation(
    tmp_path, team_a
):
    real = Node.objects.create(
        site=Site.objects.create(slug="lab", provider="on-prem"), hostname="real-1"
    )
    truth_path = tmp_path / "truth.json"
    out = io.StringIO()
    call_command("simulate_studio", "--days", "1", "--gpus", "64", "--seed", "3",
                 "--truth", str(truth_path), stdout=out, stderr=io.StringIO())  # fmt: skip
    assert "with 11 faults" in out.getvalue()  # idle-held: a stalled job and an orphan
    truth = json.loads(truth_path.read_text())
    assert len(truth["faults"]) == 11 and truth["decoys"]
    # Labelled wherever a person looks.
    assert all("(simulated)" in t.name for t in Team.objects.filter(slug__startswith="sim-"))
    assert set(Node.objects.exclude(pk=real.pk).values_list("site__slug", flat=True)) == {
        "sim-cloud"
    }
    assert not RenderJob.objects.exclude(source="sim-farm").exists()
    assert LedgerEntry.objects.exists()

    _, drafts = drafts_detect(start=datetime.fromisoformat(truth["start"]),
                              end=datetime.fromisoformat(truth["end"]))  # fmt: skip
    found = {(d.pattern, d.scope_kind, d.scope_key) for d in drafts}
    assert _keys(truth["faults"]) <= found  # recall 1.0
    assert not found & _keys(truth["decoys"])
    assert len(found - _keys(truth["faults"])) == 0  # precision 1.0

    call_command("simulate_studio", "--clear", stdout=io.StringIO())
    assert list(Node.objects.values_list("hostname", flat=True)) == ["real-1"]
    assert list(Team.objects.values_list("slug", flat=True)) == [team_a.slug]
    assert not RenderJob.objects.exists()
    assert not LedgerEntry.objects.exists()
    assert not VideoApiOffering.objects.exists()


def test_a_clean_simulated_fleet_has_no_findings(tmp_path):
    truth = studio_simulate(days=1, gpus=64, seed=4, faults=[])
    assert truth.faults == []
    _, drafts = drafts_detect(start=datetime.fromisoformat(truth.start),
                              end=datetime.fromisoformat(truth.end))  # fmt: skip
    assert [(d.pattern, d.scope_key) for d in drafts] == []


def test_bad_arguments_are_refused():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="unknown faults sloth"):
        call_command("simulate_studio", "--faults", "sloth", stdout=io.StringIO())
    with pytest.raises(CommandError, match="at least 64 GPUs"):
        call_command("simulate_studio", "--gpus", "8", stdout=io.StringIO())
