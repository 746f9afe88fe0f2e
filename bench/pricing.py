"""Pricing benchmark: stream a 200 MB AWS-format EC2 offer file through `load_prices`.

Writes a synthetic offer file in AWS's shape (products, OnDemand and Reserved terms;
mostly non-GPU products, as in the real file), then runs, each in a fresh process so peak
RSS is its own: the project's `manage.py load_prices aws FILE` into a throw-away
PostgreSQL database, and as the baseline `json.load` of the same file (what a
non-streaming loader does first). Prints rows/s and peak RSS for both, and the ratios.

    .venv/bin/python bench/pricing.py [--mb 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import ROOT, bench_database

GPU_TYPES = ["p5.48xlarge", "p5en.48xlarge", "p4d.24xlarge", "p4de.24xlarge", "g5.xlarge", "g5.12xlarge",
             "g6.xlarge", "g6e.xlarge", "g6e.48xlarge", "g4dn.xlarge"]  # fmt: skip
OTHER_FAMILIES = ["m5", "m6i", "m7g", "c5", "c6i", "c7g", "r5", "r6i", "t3", "i4i", "x2idn", "z1d"]
SIZES = ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge"]
REGIONS = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1", "eu-north-1",
           "ap-northeast-1", "ap-southeast-1", "ap-south-1", "ca-central-1", "sa-east-1"]  # fmt: skip
OSES = ["Linux", "Windows", "RHEL", "SUSE"]
TENANCIES = ["Shared", "Dedicated", "Host"]


def write_offer_file(path: Path, target_bytes: int) -> int:
    rng = random.Random(3)
    products = 0
    with path.open("w") as f:
        f.write('{"formatVersion":"v1.0","disclaimer":"Synthetic offer file for benchmarking.",'
                '"offerCode":"AmazonEC2","version":"20261101000000","publicationDate":"2026-11-01T00:00:00Z",'
                '"products":{')  # fmt: skip
        skus = []
        while f.tell() < target_bytes * 0.55:
            gpu = rng.random() < 0.05
            instance = (
                rng.choice(GPU_TYPES)
                if gpu
                else f"{rng.choice(OTHER_FAMILIES)}.{rng.choice(SIZES)}"
            )
            sku = f"{products:08d}SYNTH{rng.randrange(10**6):06d}"
            attrs = {
                "servicecode": "AmazonEC2", "location": "Synthetic", "locationType": "AWS Region",
                "instanceType": instance, "currentGeneration": "Yes", "instanceFamily": "General purpose",
                "vcpu": str(rng.choice((2, 4, 8, 16, 32, 64, 96, 192))), "memory": f"{rng.choice((8, 16, 64, 256))} GiB",
                "gpu": "8" if gpu else "0", "tenancy": rng.choice(TENANCIES), "operatingSystem": rng.choice(OSES),
                "licenseModel": "No License required", "usagetype": f"BoxUsage:{instance}", "operation": "RunInstances",
                "capacitystatus": rng.choice(("Used", "UnusedCapacityReservation", "AllocatedCapacityReservation")),
                "preInstalledSw": rng.choice(("NA", "NA", "SQL Web", "SQL Std")), "regionCode": rng.choice(REGIONS),
                "networkPerformance": "Up to 25 Gigabit", "storage": "EBS only", "processorArchitecture": "64-bit",
            }  # fmt: skip
            if products:
                f.write(",")
            f.write(
                json.dumps(sku)
                + ":"
                + json.dumps({"sku": sku, "productFamily": "Compute Instance", "attributes": attrs})
            )
            skus.append(sku)
            products += 1
        f.write('},"terms":{"OnDemand":{')
        for i, sku in enumerate(skus):
            price = f"{rng.uniform(0.01, 120):.10f}"
            term = {f"{sku}.JRTCKXETXF": {
                "offerTermCode": "JRTCKXETXF", "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z",
                "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                    "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7", "description": f"${price} per On Demand Instance Hour",
                    "beginRange": "0", "endRange": "Inf", "unit": "Hrs", "pricePerUnit": {"USD": price}, "appliesTo": []}},
                "termAttributes": {}}}  # fmt: skip
            f.write(("," if i else "") + json.dumps(sku) + ":" + json.dumps(term))
        f.write('},"Reserved":{')
        for i, sku in enumerate(skus[: len(skus) // 3]):
            term = {f"{sku}.4NA7Y494T4": {
                "offerTermCode": "4NA7Y494T4", "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z",
                "priceDimensions": {f"{sku}.4NA7Y494T4.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": "1.0000000000"}}},
                "termAttributes": {"LeaseContractLength": "1yr", "OfferingClass": "standard", "PurchaseOption": "No Upfront"}}}  # fmt: skip
            f.write(("," if i else "") + json.dumps(sku) + ":" + json.dumps(term))
        f.write("}}}")
    return products


MEASURE = """
import json, resource, sys, time, os
mode, path = sys.argv[1], sys.argv[2]
started = time.perf_counter()
if mode == "stream":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "finops.settings")
    import django
    django.setup()
    from finops.pricing.models import PriceRate
    from django.core.management import call_command
    call_command("load_prices", "aws", path, verbosity=0)
    rates = PriceRate.objects.count()
else:
    with open(path) as f:
        data = json.load(f)
    rates = len(data["products"])
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rates": rates}))
"""


def measure(mode: str, path: Path) -> dict[str, float]:
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", MEASURE, mode, str(path)],
        cwd=ROOT, capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, bench_database("pricing"):
        path = Path(tmp) / "index.json"
        started = time.perf_counter()
        products = write_offer_file(path, args.mb * 10**6)
        size_mb = path.stat().st_size / 1e6
        print(
            f"wrote {size_mb:.0f} MB offer file, {products:,} products, in {time.perf_counter() - started:.1f} s"
        )
        rows = products * 2 + products // 3  # products + OnDemand + Reserved entries
        stream = measure("stream", path)
        print(f"  load_prices aws (streaming, into PostgreSQL): {stream['seconds']:.1f} s, "
              f"{rows / stream['seconds']:,.0f} rows/s, peak RSS {stream['peak_rss_mb']:.0f} MB, "
              f"{stream['rates']:.0f} GPU rates")  # fmt: skip
        baseline = measure("json.load", path)
        print(f"  json.load (whole file in memory, no filtering, no database): {baseline['seconds']:.1f} s, "
              f"{rows / baseline['seconds']:,.0f} rows/s, peak RSS {baseline['peak_rss_mb']:.0f} MB")  # fmt: skip
        figures = {
            "bench": "pricing",
            "file_mb": round(size_mb, 1),
            "rows": rows,
            "rows_per_s": round(rows / stream["seconds"]),
            "peak_rss_mb": round(stream["peak_rss_mb"], 1),
            "rates_loaded": int(stream["rates"]),
            "json_load_rows_per_s": round(rows / baseline["seconds"]),
            "json_load_peak_rss_mb": round(baseline["peak_rss_mb"], 1),
            "rss_ratio_vs_json_load": round(stream["peak_rss_mb"] / baseline["peak_rss_mb"], 3),
            "speed_ratio_vs_json_load": round(baseline["seconds"] / stream["seconds"], 3),
        }
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
