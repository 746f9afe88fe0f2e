"""Price catalog payloads in each provider's real shape (field names as the providers
publish them), small enough to read."""

from __future__ import annotations

import json
from typing import Any


def aws_product(
    sku: str,
    instance_type: str,
    *,
    gpu: str = "8",
    os: str = "Linux",
    tenancy: str = "Shared",
    capacity: str = "Used",
    software: str = "NA",
    region: str = "us-east-1",
) -> dict[str, Any]:
    return {
        "sku": sku,
        "productFamily": "Compute Instance",
        "attributes": {
            "servicecode": "AmazonEC2", "location": "US East (N. Virginia)", "locationType": "AWS Region",
            "instanceType": instance_type, "currentGeneration": "Yes", "instanceFamily": "GPU instance",
            "vcpu": "192", "memory": "2048 GiB", "gpu": gpu, "tenancy": tenancy, "operatingSystem": os,
            "licenseModel": "No License required", "usagetype": f"USE1-BoxUsage:{instance_type}",
            "operation": "RunInstances", "capacitystatus": capacity, "preInstalledSw": software,
            "regionCode": region, "servicename": "Amazon Elastic Compute Cloud",
        },
    }  # fmt: skip


def aws_on_demand(sku: str, usd: str, *, effective: str = "2026-06-01T00:00:00Z") -> dict[str, Any]:
    return {
        f"{sku}.JRTCKXETXF": {
            "offerTermCode": "JRTCKXETXF", "sku": sku, "effectiveDate": effective,
            "priceDimensions": {
                f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                    "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                    "description": f"${usd} per On Demand Linux Instance Hour",
                    "beginRange": "0", "endRange": "Inf", "unit": "Hrs",
                    "pricePerUnit": {"USD": usd}, "appliesTo": [],
                }
            },
            "termAttributes": {},
        }
    }  # fmt: skip


def aws_reserved_1yr_no_upfront(sku: str, usd_hourly: str) -> dict[str, Any]:
    return {
        f"{sku}.4NA7Y494T4": {
            "offerTermCode": "4NA7Y494T4", "sku": sku, "effectiveDate": "2026-06-01T00:00:00Z",
            "priceDimensions": {
                f"{sku}.4NA7Y494T4.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": usd_hourly},
                                                 "description": "Linux reserved", "appliesTo": []},
            },
            "termAttributes": {"LeaseContractLength": "1yr", "OfferingClass": "standard", "PurchaseOption": "No Upfront"},
        },
        f"{sku}.6QCMYABX3D": {
            "offerTermCode": "6QCMYABX3D", "sku": sku, "effectiveDate": "2026-06-01T00:00:00Z",
            "priceDimensions": {
                f"{sku}.6QCMYABX3D.2TG2D8R56U": {"unit": "Quantity", "pricePerUnit": {"USD": "100000"}},
                f"{sku}.6QCMYABX3D.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": "0.0000000000"}},
            },
            "termAttributes": {"LeaseContractLength": "1yr", "OfferingClass": "standard", "PurchaseOption": "All Upfront"},
        },
    }  # fmt: skip


def aws_offer_file() -> dict[str, Any]:
    products = {
        "P5": aws_product("P5", "p5.48xlarge"),
        "P4D": aws_product("P4D", "p4d.24xlarge"),
        "G5": aws_product("G5", "g5.xlarge", gpu="1"),
        "G6E": aws_product("G6E", "g6e.xlarge", gpu="1"),
        "P5WIN": aws_product("P5WIN", "p5.48xlarge", os="Windows"),
        "P5DED": aws_product("P5DED", "p5.48xlarge", tenancy="Dedicated"),
        "P5CR": aws_product("P5CR", "p5.48xlarge", capacity="AllocatedCapacityReservation"),
        "P5SQL": aws_product("P5SQL", "p5.48xlarge", software="SQL Web"),
        "G4DN": aws_product("G4DN", "g4dn.xlarge", gpu="1"),
        "M5": aws_product("M5", "m5.large", gpu="0"),
        "P5EU": aws_product("P5EU", "p5.48xlarge", region="eu-north-1"),
    }
    prices = {"P5": "55.0400000000", "P4D": "21.9576000000", "G5": "1.0060000000", "G6E": "1.8610000000",
              "P5WIN": "64.0000000000", "P5DED": "60.0000000000", "P5CR": "50.0000000000", "P5SQL": "70.0000000000",
              "G4DN": "0.5260000000", "M5": "0.0960000000", "P5EU": "57.0000000000"}  # fmt: skip
    return {
        "formatVersion": "v1.0",
        "disclaimer": "This pricing list is for informational purposes only.",
        "offerCode": "AmazonEC2",
        "version": "20261101000000",
        "publicationDate": "2026-11-01T00:00:00Z",
        "products": products,
        "terms": {
            "OnDemand": {sku: aws_on_demand(sku, usd) for sku, usd in prices.items()},
            "Reserved": {"P5": aws_reserved_1yr_no_upfront("P5", "38.5200000000")},
        },
    }


def aws_get_products_page(next_token: str | None = None) -> dict[str, Any]:
    entry = {"product": aws_product("P5", "p5.48xlarge"), "serviceCode": "AmazonEC2",
             "terms": {"OnDemand": {"P5": aws_on_demand("P5", "55.0400000000")}},
             "version": "20261101000000", "publicationDate": "2026-11-01T00:00:00Z"}  # fmt: skip
    page: dict[str, Any] = {"FormatVersion": "aws_v1", "PriceList": [json.dumps(entry)]}
    if next_token:
        page["NextToken"] = next_token
    return page


def azure_item(**overrides: Any) -> dict[str, Any]:
    item = {
        "currencyCode": "USD", "tierMinimumUnits": 0.0, "retailPrice": 98.32, "unitPrice": 98.32,
        "armRegionName": "eastus", "location": "US East", "effectiveStartDate": "2026-05-01T00:00:00Z",
        "meterId": "5a1b0f2c-0000-4000-8000-000000000001", "meterName": "ND96isr H100 v5",
        "productId": "DZH318Z08M9R", "skuId": "DZH318Z08M9R/00FC", "productName": "NDSR H100 v5 Series",
        "skuName": "ND96isr H100 v5", "serviceName": "Virtual Machines", "serviceId": "DZH313Z7MMC8",
        "serviceFamily": "Compute", "unitOfMeasure": "1 Hour", "type": "Consumption",
        "isPrimaryMeterRegion": True, "armSkuName": "Standard_ND96isr_H100_v5",
    }  # fmt: skip
    item.update(overrides)
    return item


def azure_pages(base_url: str) -> dict[str, dict[str, Any]]:
    """Path -> page, linked by NextPageLink as the Retail Prices API does."""
    return {
        "/api/retail/prices": {
            "BillingCurrency": "USD", "CustomerEntityId": "Default", "CustomerEntityType": "Retail",
            "Items": [
                azure_item(),
                azure_item(productName="NDSR H100 v5 Series Windows", retailPrice=110.0, meterId="win"),
                azure_item(type="DevTestConsumption", retailPrice=90.0, meterId="devtest"),
            ],
            "NextPageLink": f"{base_url}/api/retail/prices?$skip=100", "Count": 3,
        },
        "/api/retail/prices?$skip=100": {
            "BillingCurrency": "USD", "CustomerEntityId": "Default", "CustomerEntityType": "Retail",
            "Items": [
                azure_item(meterName="ND96isr H100 v5 Spot", skuName="ND96isr H100 v5 Spot", retailPrice=39.33, meterId="spot"),
                azure_item(meterName="ND96isr H100 v5 Low Priority", skuName="ND96isr H100 v5 Low Priority", retailPrice=20.0, meterId="lowpri"),
                azure_item(type="Reservation", reservationTerm="1 Year", retailPrice=516843.0, meterId="ri"),
                azure_item(armSkuName="Standard_NC4as_T4_v3", meterName="NC4as T4 v3", skuName="NC4as T4 v3", retailPrice=0.526, meterId="t4"),
                azure_item(armSkuName="Standard_D2s_v5", meterName="D2s v5", retailPrice=0.096, meterId="d2"),
            ],
            "NextPageLink": None, "Count": 5,
        },
    }  # fmt: skip


def gcp_sku(
    sku_id: str,
    description: str,
    usage: str,
    units: str,
    nanos: int,
    regions: list[str],
    resource_group: str = "GPU",
) -> dict[str, Any]:
    return {
        "name": f"services/6F81-5844-456A/skus/{sku_id}", "skuId": sku_id, "description": description,
        "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": "Compute",
                     "resourceGroup": resource_group, "usageType": usage},
        "serviceRegions": regions,
        "pricingInfo": [{
            "summary": "", "effectiveTime": "2026-11-01T08:00:00.000Z", "currencyConversionRate": 1,
            "pricingExpression": {
                "usageUnit": "h", "displayQuantity": 1, "usageUnitDescription": "hour", "baseUnit": "s",
                "baseUnitDescription": "second", "baseUnitConversionFactor": 3600,
                "tieredRates": [{"startUsageAmount": 0,
                                 "unitPrice": {"currencyCode": "USD", "units": units, "nanos": nanos}}],
            },
            "aggregationInfo": {"aggregationLevel": "ACCOUNT", "aggregationInterval": "DAILY", "aggregationCount": 1},
        }],
        "serviceProviderName": "Google",
    }  # fmt: skip


def gcp_pages() -> dict[str, dict[str, Any]]:
    return {
        "/v1/services/6F81-5844-456A/skus": {
            "skus": [
                gcp_sku("A1B2-H100-OD", "Nvidia H100 80GB GPU running in Americas", "OnDemand", "11", 60670000,
                        ["us-central1", "us-east4"]),
                gcp_sku("C3D4-N1CORE", "N1 Predefined Instance Core running in Americas", "OnDemand", "0", 31611000,
                        ["us-central1"], resource_group="N1Standard"),
            ],
            "nextPageToken": "page-2",
        },
        "/v1/services/6F81-5844-456A/skus?pageToken=page-2": {
            "skus": [
                gcp_sku("E5F6-H100-SPOT", "Nvidia H100 80GB GPU attached to Spot Preemptible VMs running in Americas",
                        "Preemptible", "2", 253000000, ["us-central1"]),
                gcp_sku("G7H8-L4-OD", "Nvidia L4 GPU running in Americas", "OnDemand", "0", 560040000, ["us-central1"]),
                gcp_sku("I9J0-T4-OD", "Nvidia Tesla T4 GPU running in Americas", "OnDemand", "0", 350000000, ["us-central1"]),
            ],
            "nextPageToken": "",
        },
    }  # fmt: skip
