from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from finops.fleet.models import Gpu, GpuModel, Node, Site
from finops.pricing.models import PriceRate
from finops.pricing.selectors import price_resolve
from tests.pricing import payloads

pytestmark = pytest.mark.django_db


class _Catalog(BaseHTTPRequestHandler):
    pages: dict[str, Any] = {}

    def do_GET(self) -> None:
        page = self.pages.get(self.path)
        body = json.dumps(page).encode() if page is not None else b'{"error": "not found"}'
        self.send_response(200 if page is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def catalog_server() -> Iterator[tuple[str, type[_Catalog]]]:
    handler = type("Handler", (_Catalog,), {"pages": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _load(*args: str) -> str:
    out = io.StringIO()
    call_command("load_prices", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def _rates() -> dict[tuple[str, str, str], Decimal]:
    return {
        (r.sku, r.region, r.pricing_model): r.price_per_gpu_hour for r in PriceRate.objects.all()
    }


def test_aws_offer_file_yields_per_gpu_rates_for_linux_shared_used_only(tmp_path):
    path = tmp_path / "index.json"
    path.write_text(json.dumps(payloads.aws_offer_file()))
    output = _load("aws", str(path), "--region", "us-east-1")
    assert _rates() == {
        ("p5.48xlarge", "us-east-1", "on-demand"): Decimal("6.880000"),  # 55.04 / 8
        ("p4d.24xlarge", "us-east-1", "on-demand"): Decimal("2.744700"),  # 21.9576 / 8
        ("g5.xlarge", "us-east-1", "on-demand"): Decimal("1.006000"),
        ("g6e.xlarge", "us-east-1", "on-demand"): Decimal("1.861000"),
        ("p5.48xlarge", "us-east-1", "reserved"): Decimal("4.815000"),  # 1yr no upfront 38.52 / 8
    }
    p5 = PriceRate.objects.get(sku="p5.48xlarge", pricing_model="on-demand")
    assert (p5.gpu_model.name, p5.gpus_per_unit, p5.price_per_unit_hour) == (
        "H100 SXM",
        8,
        Decimal("55.04"),
    )
    assert p5.valid_from == datetime(2026, 6, 1, tzinfo=UTC)
    assert p5.raw_reference["sku"] == "P5"
    assert "4 new" not in output  # 5 rates: four on-demand and one reserved
    assert "5 new, 0 changed, 0 unchanged, 1 GPU offers without a catalog mapping" in output


def test_aws_get_products_pages_are_followed(catalog_server):
    url, handler = catalog_server
    handler.pages = {
        "/pricing/ec2": payloads.aws_get_products_page(next_token="t2"),
        "/pricing/ec2?NextToken=t2": payloads.aws_get_products_page(),
    }
    _load("aws", f"{url}/pricing/ec2")
    assert _rates() == {("p5.48xlarge", "us-east-1", "on-demand"): Decimal("6.880000")}


def test_azure_pages_are_followed_to_the_end(catalog_server):
    url, handler = catalog_server
    handler.pages = payloads.azure_pages(url)
    output = _load("azure", f"{url}/api/retail/prices")
    assert "items ignored (" in output
    for reason in ("Windows", "low priority", "dev/test pricing", "not a GPU instance"):
        assert f"{reason}: 1" in output, reason
    assert _rates() == {
        ("Standard_ND96isr_H100_v5", "eastus", "on-demand"): Decimal("12.290000"),  # 98.32 / 8
        ("Standard_ND96isr_H100_v5", "eastus", "spot"): Decimal("4.916250"),  # 39.33 / 8
        ("Standard_ND96isr_H100_v5", "eastus", "reserved"): Decimal(
            "7.375043"
        ),  # 516,843 / 8760 h / 8
    }  # Windows, DevTest, Low Priority and non-GPU rows are gone; the T4 VM is reported


def test_gcp_rates_are_units_plus_nanos_per_hour_by_region(catalog_server):
    url, handler = catalog_server
    handler.pages = payloads.gcp_pages()
    output = _load("gcp", f"{url}/v1/services/6F81-5844-456A/skus")
    assert _rates() == {
        ("H100 SXM", "us-central1", "on-demand"): Decimal("11.060670"),
        ("H100 SXM", "us-east4", "on-demand"): Decimal("11.060670"),
        ("H100 SXM", "us-central1", "spot"): Decimal("2.253000"),
        ("L4", "us-central1", "on-demand"): Decimal("0.560040"),
    }
    assert "1 GPU offers without a catalog mapping" in output  # the T4


RATE_CARD = """provider,sku,region,pricing_model,price_per_hour,gpus_per_unit,currency,valid_from,valid_to
other,gpu_8x_h100_sxm5,us-tx-1,on-demand,23.92,8,USD,2026-01-01,
other,gpu_1x_a10,us-tx-1,on-demand,0.75,1,USD,2026-01-01,2026-12-31
"""


def _csv(tmp_path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "rates.csv"
    path.write_text(text)
    return str(path)


def test_rate_card_csv(tmp_path):
    _load("csv", _csv(tmp_path, RATE_CARD))
    rate = PriceRate.objects.get(sku="gpu_8x_h100_sxm5")
    assert (rate.price_per_gpu_hour, rate.valid_to) == (Decimal("2.990000"), None)
    assert PriceRate.objects.get(sku="gpu_1x_a10").valid_to == datetime(2026, 12, 31, tzinfo=UTC)


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("other,x,r,on-demand,-1.0,1,USD,2026-01-01,", "line 4: price_per_hour: -1.0 is negative"),
        ("other,x,r,on-demand,,1,USD,2026-01-01,", "line 4: price_per_hour: is missing"),
        (
            "other,x,r,on-demand,1.0,1,XYZ,2026-01-01,",
            "line 4: currency: 'XYZ' is not a known ISO 4217 currency",
        ),
        ("other,x,r,lease,1.0,1,USD,2026-01-01,", "line 4: pricing_model"),
        (
            "other,x,r,on-demand,NaN,1,USD,2026-01-01,",
            "line 4: price_per_hour: 'NaN' is not a finite number",
        ),
    ],
)
def test_a_bad_file_names_the_record_and_loads_nothing(tmp_path, bad_line, message):
    _load("csv", _csv(tmp_path, RATE_CARD))
    before = list(PriceRate.objects.values_list("sku", "price_per_gpu_hour", "valid_to"))
    changed = RATE_CARD.replace("23.92", "30.00") + bad_line + "\n"
    with pytest.raises(CommandError) as excinfo:
        _load("csv", _csv(tmp_path, changed))
    assert message in str(excinfo.value)
    assert "previous rates are untouched" in str(excinfo.value)
    assert list(PriceRate.objects.values_list("sku", "price_per_gpu_hour", "valid_to")) == before


def test_invalid_aws_json_names_the_line_and_column(tmp_path):
    text = json.dumps(payloads.aws_offer_file(), indent=1).replace('"Hrs"', "'Hrs'", 1)
    path = tmp_path / "index.json"
    path.write_text(text)
    line = next(n for n, row in enumerate(text.splitlines(), start=1) if "'Hrs'" in row)
    with pytest.raises(CommandError, match=rf"at line {line}, column \d+"):
        _load("aws", str(path))
    assert not PriceRate.objects.exists()


def test_truncated_aws_file_loads_nothing(tmp_path):
    text = json.dumps(payloads.aws_offer_file())
    path = tmp_path / "index.json"
    path.write_text(text[: len(text) * 2 // 3])
    with pytest.raises(CommandError, match="truncated"):
        _load("aws", str(path))
    assert not PriceRate.objects.exists()


def test_aws_price_without_currency_amount_is_refused(tmp_path):
    offer = payloads.aws_offer_file()
    dims = offer["terms"]["OnDemand"]["P5"]["P5.JRTCKXETXF"]["priceDimensions"]
    next(iter(dims.values()))["pricePerUnit"] = {}
    path = tmp_path / "index.json"
    path.write_text(json.dumps(offer))
    with pytest.raises(
        CommandError,
        match=r"terms.OnDemand.P5.P5.JRTCKXETXF.priceDimensions.* pricePerUnit: is missing",
    ):
        _load("aws", str(path))
    assert not PriceRate.objects.exists()


def test_a_changed_price_closes_the_old_rate_and_keeps_history(tmp_path):
    _load("csv", _csv(tmp_path, RATE_CARD))
    later = RATE_CARD.replace("23.92,8,USD,2026-01-01", "20.00,8,USD,2026-09-01")
    output = _load("csv", _csv(tmp_path, later))
    assert "1 changed, 1 unchanged" in output
    old, new = PriceRate.objects.filter(sku="gpu_8x_h100_sxm5").order_by("valid_from")
    assert old.valid_to == new.valid_from == datetime(2026, 9, 1, tzinfo=UTC)
    assert (old.price_per_gpu_hour, new.price_per_gpu_hour, new.valid_to) == (
        Decimal("2.99"),
        Decimal("2.5"),
        None,
    )


def test_dry_run_prints_changes_and_writes_nothing(tmp_path):
    output = _load("csv", _csv(tmp_path, RATE_CARD), "--dry-run")
    assert "+ other gpu_8x_h100_sxm5 us-tx-1 on-demand: 2.990000 USD/GPU-h" in output
    assert "Dry run, nothing written" in output
    assert not PriceRate.objects.exists()


def test_onprem_amortisation_and_energy_rate(tmp_path):
    path = tmp_path / "onprem.json"
    path.write_text(json.dumps([{
        "sku": "dgx-h100", "gpu_model": "H100 SXM", "gpus_per_unit": 8, "purchase_price": 350400,
        "amortization_months": 48, "power_draw_w": 10200, "price_per_kwh": 0.12, "pue": 1.3,
        "currency": "USD", "region": "dc-1", "valid_from": "2026-01-01T00:00:00Z"}]))  # fmt: skip
    _load("onprem", str(path))
    rate = PriceRate.objects.get()
    # 350,400 / (48 months x 730 h) = 10.00 per system-hour = 1.25 per GPU-hour.
    assert (rate.price_per_unit_hour, rate.price_per_gpu_hour) == (Decimal("10"), Decimal("1.25"))
    assert (rate.energy_per_kwh, rate.pue, rate.pricing_model) == (
        Decimal("0.12"),
        Decimal("1.30"),
        "on-prem",
    )
    assert rate.raw_reference["energy_per_hour_at_rated_draw"] == "1.591200"


def _node(
    instance_type: str = "p5.48xlarge", *, provider: str = "aws", region: str = "us-east-1"
) -> Node:
    site = Site.objects.create(slug=f"{provider}-{region}", provider=provider, region=region)
    node = Node.objects.create(
        site=site, hostname=f"n-{instance_type}", instance_type=instance_type
    )
    Gpu.objects.create(
        node=node, uuid=f"GPU-{instance_type}", index=0, model=GpuModel.objects.get(name="H100 SXM")
    )
    return node


def test_resolution_order_and_a_price_change_mid_window(tmp_path, api, make_key):
    path = tmp_path / "index.json"
    path.write_text(json.dumps(payloads.aws_offer_file()))
    _load("aws", str(path))
    node = _node()
    june = datetime(2026, 7, 1, tzinfo=UTC)
    assert price_resolve(node=node, at=june).price == Decimal("6.88")
    assert price_resolve(node=node, at=datetime(2026, 1, 1, tzinfo=UTC)).price is None

    changed = payloads.aws_offer_file()
    changed["terms"]["OnDemand"]["P5"] = payloads.aws_on_demand(
        "P5", "48.0000000000", effective="2026-10-01T00:00:00Z"
    )
    path.write_text(json.dumps(changed))
    _load("aws", str(path))
    assert price_resolve(node=node, at=june).price == Decimal("6.88")
    after = price_resolve(node=node, at=datetime(2026, 10, 2, tzinfo=UTC))
    assert after.price == Decimal("6")
    assert "p5.48xlarge in us-east-1, on-demand, valid from 2026-10-01" in after.reason

    node.price_override_per_gpu_hour = Decimal("4.5")
    node.save()
    assert price_resolve(node=node, at=june).reason == "node price override"

    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key('read')}")
    node.price_override_per_gpu_hour = None
    node.save()
    body = api.get(
        "/api/v1/pricing/resolve", {"node": node.hostname, "at": "2026-10-02T00:00:00Z"}
    ).json()
    assert body["price_per_gpu_hour"] == "6.000000"
    assert body["rate"]["sku"] == "p5.48xlarge"
    assert api.get("/api/v1/pricing/resolve", {"node": "nope"}).status_code == 404
    bad = api.get("/api/v1/pricing/resolve", {"node": node.hostname, "at": "yesterday"})
    assert bad.status_code == 400
    assert "at" in bad.json()["extra"]["fields"]


def test_per_gpu_rates_and_the_model_default(catalog_server):
    url, handler = catalog_server
    handler.pages = payloads.gcp_pages()
    _load("gcp", f"{url}/v1/services/6F81-5844-456A/skus")
    node = _node("a3-highgpu-8g", provider="gcp", region="us-central1")
    now = datetime.now(UTC)
    resolved = price_resolve(node=node, at=now)
    assert resolved.price == Decimal("11.06067")
    assert "per-GPU rate for H100 SXM" in resolved.reason
    other = _node("a3-highgpu-8g-x", provider="gcp", region="asia-east1")
    assert price_resolve(node=other, at=now).price is None
    GpuModel.objects.filter(name="H100 SXM").update(default_price_per_gpu_hour=Decimal("3.5"))
    fallback = price_resolve(node=other, at=now + timedelta(seconds=1))
    assert (fallback.price, fallback.reason) == (
        Decimal("3.5"),
        "default rate of H100 SXM",
    )


def test_transient_server_errors_are_retried(catalog_server, monkeypatch):
    import collectors.pricing.fetch as fetch

    monkeypatch.setattr(fetch.time, "sleep", lambda s: None)
    url, handler = catalog_server
    pages = payloads.gcp_pages()
    failures = {"left": 2}
    original = handler.do_GET

    def flaky(self):  # type: ignore[no-untyped-def]
        if failures["left"]:
            failures["left"] -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        original(self)

    handler.pages = pages
    handler.do_GET = flaky
    _load("gcp", f"{url}/v1/services/6F81-5844-456A/skus")
    assert failures["left"] == 0
    assert PriceRate.objects.filter(sku="L4").exists()


def test_storage_is_priced_per_gb_month_by_volume_type(tmp_path):
    from finops.fleet.models import StorageDevice
    from finops.pricing.selectors import storage_price_resolve

    card = (
        "provider,sku,region,pricing_model,price_per_hour,gpus_per_unit,currency,valid_from,valid_to,storage_per_gb_month\n"
        "aws,gp3,us-east-1,on-demand,0,1,USD,2026-01-01,,0.08\n"
    )
    _load("csv", _csv(tmp_path, card))
    node = _node()
    device = StorageDevice.objects.create(
        node=node, name="nvme1n1", kind="network", volume_type="gp3"
    )
    resolved = storage_price_resolve(device=device, at=datetime(2026, 6, 1, tzinfo=UTC))
    assert (resolved.price, resolved.currency) == (Decimal("0.08"), "USD")
    device.volume_type = "io2"
    assert storage_price_resolve(device=device, at=datetime(2026, 6, 1, tzinfo=UTC)).price is None


def test_node_admin_shows_the_price_and_why(client, root, tmp_path):
    _load(
        "csv",
        _csv(
            tmp_path,
            RATE_CARD.replace("other,gpu_8x_h100_sxm5,us-tx-1", "aws,p5.48xlarge,us-east-1"),
        ),
    )
    node = _node()
    client.force_login(root)
    page = client.get(f"/admin/fleet/node/{node.pk}/change/").content.decode()
    assert "2.990000 USD (Rate card CSV rate for p5.48xlarge in us-east-1, on-demand" in page
