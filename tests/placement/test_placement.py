"""Placement on a hand-worked team: one H100 at $4 per GPU-hour held all hour by three
attempts at one clip of wan2.1-t2v-14b at 1280x720 (81 frames at 16 fps, 50 steps), only
the third usable. Cost $4.00; generated 3 x 81/16 = 15.1875 s; usable 5.0625 s; today
$4 / 5.0625 = $0.790123 per usable second; 3 seconds generated per usable one."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from collectors.pricing.offers import PriceError
from collectors.pricing.video_api import video_api_csv
from finops.accounts.models import Team
from finops.costing.engine import ledger_recompute
from finops.fleet.models import GpuModel
from finops.insights.models import Finding
from finops.insights.services import findings_refresh
from finops.placement.models import PlacementMapping
from finops.placement.selectors import placement
from finops.pricing.models import PriceRate, VideoApiOffering, VideoApiPrice
from finops.pricing.services import video_api_prices_load
from inference.pipeline import PIPELINES, Setup, estimate, gpu_entries
from tests.insights.test_detectors import T0, T1, at, hour, job, node

pytestmark = pytest.mark.django_db
HEADER = ("provider,offering,model_family,resolution_tier,price_per_second,currency,"
          "audio_included,valid_from,valid_to,source\n")  # fmt: skip
SHEET = HEADER + (
    "acme,acme-video-2,Acme 2,720p,0.05,USD,false,2026-10-01,,acme.example/pricing read 2026-11-15\n"
    "openai,sora-2,Sora 2,720p,0.10,USD,true,2026-10-01,,openai.com/api/pricing read 2026-11-15\n"
    "openai,sora-2,Sora 2,480p,0.08,USD,true,2026-10-01,,openai.com/api/pricing read 2026-11-15\n"
)
SHAPE = {"model_name": "wan2.1-t2v-14b", "width": 1280, "height": 720, "frames": 81, "fps": 16,
         "steps": 50}  # fmt: skip


def _load(text: str = SHEET) -> None:
    video_api_prices_load(video_api_csv(io.StringIO(text)))


@pytest.fixture
def workload(team_a):  # type: ignore[no-untyped-def]
    (g,) = node("pl-1")
    hour(g)
    for i, usable in enumerate((False, False, True)):  # each reports a minute before it lets go
        job(team_a, [(g, 20 * i, 20 * (i + 1))], usable=usable, clip_id="c1",
            finished_at=at(20 * (i + 1) - 1), **SHAPE)  # fmt: skip
    ledger_recompute(start=T0, end=T1)
    h100, l4 = GpuModel.objects.get(name="H100 SXM"), GpuModel.objects.get(name="L4")
    for model, sku, price in ((h100, "p5.48xlarge", "2.00"), (l4, "g6.xlarge", "0.80")):
        PriceRate.objects.create(
            provider="aws", sku=sku, region="us-east-1", pricing_model="on-demand",
            gpu_model=model, gpus_per_unit=1, price_per_unit_hour=Decimal(price),
            price_per_gpu_hour=Decimal(price), valid_from=T0 - timedelta(days=30), source="csv",
        )  # fmt: skip
    _load()
    return team_a


def _rows(team: Team):  # type: ignore[no-untyped-def]
    (w,) = placement(teams=Team.objects.filter(pk=team.pk), start=T0, end=T1, at=T1)
    return w, {o.label: o for o in w.options}


def test_rows_equal_hand_computation(workload):
    w, rows = _rows(workload)
    assert (w.model_name, w.resolution, w.frames, w.steps) == ("wan2.1-t2v-14b", "1280x720", 81, 50)
    assert w.cost == Decimal("4.00")
    assert (w.generated_seconds, w.usable_seconds) == (15.1875, 5.0625)
    assert w.today.cost_per_usable_second == Decimal("0.790123")
    # Month: 30 days of this hour's volume, 3,645 usable seconds.
    assert w.monthly_usable_seconds == pytest.approx(5.0625 * 720)
    assert w.today.monthly_cost == Decimal("2880.00")
    # A GPU: the planner's time for the shape x the rate / 3600 x 3 generated seconds per
    # usable second / the clip's 5.0625 seconds.
    planned = estimate(PIPELINES["wan-14b"], gpu_entries("H100 SXM")[0], height=720, width=1280,
                       frames=81, steps=50, setup=Setup()).seconds  # fmt: skip
    h100 = rows["H100 SXM on-demand at $2.00/GPU-h"]
    expected = Decimal(repr(planned)) * 2 / 3600 * 3 / Decimal("5.0625")
    assert h100.cost_per_usable_second == expected.quantize(Decimal("0.000001"))
    assert h100.recommendable and h100.details["fits"]
    # The L4 cannot hold the 14B model at any setup: shown, never recommended, no price.
    l4 = rows["L4 on-demand at $0.80/GPU-h"]
    assert not l4.recommendable and l4.cost_per_usable_second is None
    assert "does not fit" in l4.assumptions[0]
    # An API offering: price per generated second x 3 generated per usable second; only
    # the 720p tier of the workload's resolution; unmapped: for reference.
    acme = rows["acme acme-video-2 (720p)"]
    assert acme.cost_per_usable_second == Decimal("0.150000")
    assert acme.monthly_saving == Decimal("2880.00") - Decimal("0.15") * Decimal("3645")
    assert not acme.recommendable and "for reference only" in acme.assumptions[-1]
    assert rows["openai sora-2 (720p)"].cost_per_usable_second == Decimal("0.300000")
    assert "openai sora-2 (480p)" not in rows
    # Cheapest first.
    priced = [o.cost_per_usable_second for o in w.options if o.cost_per_usable_second]
    assert priced == sorted(priced)


def test_the_finding_fires_only_for_a_mapped_cheaper_offering(workload):
    findings_refresh(start=T0, end=T1, now=T1)
    assert not Finding.objects.filter(pattern="placement").exists()  # nothing mapped yet
    offering = VideoApiOffering.objects.get(offering="acme-video-2")
    PlacementMapping.objects.create(model_name="wan2.1-t2v-14b", resolution="1280x720",
                                    offering=offering)  # fmt: skip
    findings_refresh(start=T0, end=T1, now=T1)
    (f,) = Finding.objects.filter(pattern="placement")
    assert f.scope_key == "studio-a:wan2.1-t2v-14b:-:1280x720"
    assert f.evidence["alternative"] == "acme acme-video-2 (720p)"
    assert f.evidence["cost_per_usable_second_today"] == "0.790123"
    assert f.evidence["alternative_cost_per_usable_second"] == "0.150000"
    # The window is an hour of a 30-day month's saving, never more than its cost.
    saving = Decimal("2880.00") - Decimal("0.15") * Decimal("3645")
    assert f.evidence["monthly_saving"] == str(saving)
    assert f.waste == (saving / 720).quantize(Decimal("0.01"))


def test_no_finding_below_the_monthly_saving(workload, settings):
    settings.INSIGHTS_THRESHOLDS = {**settings.INSIGHTS_THRESHOLDS,
                                    "placement_min_monthly_saving": 10_000.0}  # fmt: skip
    offering = VideoApiOffering.objects.get(offering="acme-video-2")
    PlacementMapping.objects.create(model_name="wan2.1-t2v-14b", offering=offering)
    findings_refresh(start=T0, end=T1, now=T1)
    assert not Finding.objects.filter(pattern="placement").exists()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,b,c,720p,-0.1,USD,false,2026-10-01,,s", "line 2: price_per_second: -0.1 is negative"),
        (
            "a,b,c,720p,NaN,USD,false,2026-10-01,,s",
            "line 2: price_per_second: 'NaN' is not a finite",
        ),
        ("a,b,c,8k,0.1,USD,false,2026-10-01,,s", "line 2: resolution_tier: '8k'"),
        ("a,b,c,720p,0.1,USD,maybe,2026-10-01,,s", "line 2: audio_included"),
        ("a,b,c,720p,0.1,USD,false,2026-10-01,,", "line 2: source"),
        ("a,b,c,720p,0.1,XXX,false,2026-10-01,,s", "line 2: currency"),
        ("a,b,c,720p,0.1,USD,false,yesterday,,s", "line 2: valid_from"),
        ("a,b,c,720p,0.1,USD,false,2026-10-01,2026-09-01,s", "line 2: valid_to: must be after"),
    ],
)
def test_bad_rows_are_named_and_nothing_loads(db, row, message):
    with pytest.raises(PriceError, match=message.replace("2", "3", 1).replace("(", r"\(")):
        _load(HEADER + "ok,fine,F,720p,0.1,USD,false,2026-10-01,,s\n" + row + "\n")
    assert not VideoApiPrice.objects.exists()


def test_overlaps_are_refused_naming_both_lines_and_history_is_kept(db):
    overlapping = HEADER + (
        "acme,a2,A,720p,0.05,USD,false,2026-10-01,,s\nacme,a2,A,720p,0.04,USD,false,2026-11-01,,s\n"
    )
    with pytest.raises(PriceError, match="line 2 and line 3: valid_to: both are valid at"):
        _load(overlapping)
    assert not VideoApiPrice.objects.exists()
    _load(HEADER + "acme,a2,A,720p,0.05,USD,false,2026-10-01,,s\n")
    # A later sheet that starts a new price while the stored one is open is refused...
    with pytest.raises(PriceError, match="line 2 and the stored price from 2026-10-01"):
        _load(HEADER + "acme,a2,A,720p,0.04,USD,false,2026-11-01,,s\n")
    # ...one that changes a stored price in place is refused (a price is history)...
    with pytest.raises(PriceError, match=r"line 2: price_per_second: .* is stored at 0\.050000"):
        _load(HEADER + "acme,a2,A,720p,0.06,USD,false,2026-10-01,,s\n")
    # ...and one that closes it and starts the next keeps both.
    _load(HEADER + "acme,a2,A,720p,0.05,USD,false,2026-10-01,2026-11-01,s\n"
                   "acme,a2,A,720p,0.04,USD,false,2026-11-01,,s\n")  # fmt: skip
    prices = list(VideoApiPrice.objects.order_by("valid_from").values_list(
        "price_per_second", "valid_to"))  # fmt: skip
    assert prices == [(Decimal("0.050000"), datetime(2026, 11, 1, tzinfo=UTC)),
                      (Decimal("0.040000"), None)]  # fmt: skip


def test_the_command_loads_the_example_sheet_and_reports(db, capsys):
    call_command("load_prices", "video-api", "docs/examples/video-api-prices.csv")
    out = capsys.readouterr().out
    assert "5 new video API prices" in out and VideoApiPrice.objects.count() == 5
    call_command("load_prices", "video-api", "docs/examples/video-api-prices.csv")
    assert "0 new video API prices, 0 changed, 5 unchanged" in capsys.readouterr().out
    with pytest.raises(CommandError, match=r"no such file|cannot read"):
        call_command("load_prices", "video-api", "missing.csv")
    assert datetime(2026, 10, 1, tzinfo=UTC) == VideoApiPrice.objects.first().valid_from


@pytest.fixture
def two_teams(workload, team_b):  # type: ignore[no-untyped-def]
    (g,) = node("pl-b")
    hour(g)
    job(team_b, [(g, 0, 60)], usable=True, clip_id="b1", finished_at=at(59),
        **{**SHAPE, "model_name": "wan2.1-t2v-1.3b", "width": 832, "height": 480})  # fmt: skip
    ledger_recompute(start=T0, end=T1)
    return workload, team_b


def _window() -> str:
    return f"{T0.isoformat()},{T1.isoformat()}"


def test_the_api_and_the_page_show_only_the_callers_teams(two_teams, client, alice, api,
                                                          make_key):  # fmt: skip
    key = make_key("read", team=two_teams[0])
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    body = api.get("/api/v1/placement", {"window": _window()}).json()
    assert [w["team"] for w in body["workloads"]] == ["studio-a"]
    (w,) = body["workloads"]
    assert w["usable_share"] == pytest.approx(1 / 3, abs=1e-4)
    assert w["options"][0]["cost_per_usable_second"] is not None
    assert api.get("/api/v1/placement", {"team": "studio-b"}).status_code == 404
    bad = api.get("/api/v1/placement", {"window": "forever"})
    assert bad.status_code == 400 and "window" in bad.json()["extra"]["fields"]

    client.force_login(alice)
    page = client.get("/placement/", {"window": _window()}).content.decode()
    assert "wan2.1-t2v-14b" in page and "studio-b" not in page and "wan2.1-t2v-1.3b" not in page
    assert "placement-chart" in page and "for reference" in page
    assert client.get("/placement/", {"team": "studio-b"}).status_code == 400
    csv = client.get("/placement/", {"window": _window(), "format": "csv"}).content.decode()
    assert csv.splitlines()[0].startswith("team,model,version,resolution,where,status")


def test_mappings_are_read_by_everyone_and_changed_by_admins(db, api, make_key, root, alice):
    _load()
    offering = VideoApiOffering.objects.get(offering="acme-video-2")
    body = {"model_name": "wan2.1-t2v-14b", "resolution": "1280x720", "offering": offering.pk}
    api.force_authenticate(alice)
    assert api.post("/api/v1/placement/mappings", body, format="json").status_code == 403
    api.force_authenticate(root)
    created = api.post("/api/v1/placement/mappings", body, format="json")
    assert created.status_code == 201 and created.json()["offering_name"] == "acme acme-video-2"
    again = api.post("/api/v1/placement/mappings", body, format="json")
    assert again.status_code == 400 and "exists already" in str(again.json())
    wrong = api.post("/api/v1/placement/mappings", {**body, "resolution": "720p"}, format="json")
    assert wrong.status_code == 400 and "WxH" in str(wrong.json())
    api.force_authenticate(None)
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('read')}")
    assert len(api.get("/api/v1/placement/mappings").json()) == 1
    assert api.delete(f"/api/v1/placement/mappings/{created.json()['id']}").status_code == 403
