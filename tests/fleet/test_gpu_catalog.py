from __future__ import annotations

import pytest

from collectors.catalog import catalog_entries, normalise_gpu_name
from finops.fleet.models import GpuModel
from finops.fleet.selectors import gpu_model_for_reported_name

pytestmark = pytest.mark.django_db

REQUIRED = [
    "H100 SXM",
    "H100 PCIe",
    "H200",
    "A100 40GB",
    "A100 80GB",
    "L40S",
    "L4",
    "A10G",
    "RTX 4090",
    "RTX 5090",
    "B200",
]


def test_migration_seeds_the_catalog_with_sourced_figures():
    models = {m.name: m for m in GpuModel.objects.all()}
    for name in REQUIRED:
        model = models[name]
        assert model.vram_bytes > 0
        assert model.bf16_dense_tflops > 0
        assert model.mem_bandwidth_gb_per_s > 0
        assert model.tdp_w > 0
        assert model.pcie_gen in (4, 5)
        assert model.sources, name
        assert all("http" in s for s in model.sources), name
    assert models["H100 SXM"].vram_gib == 80
    assert models["H100 SXM"].nvlink
    assert models["H200"].vram_gib == 141
    assert models["L40S"].vram_gib == 48
    assert not models["L40S"].nvlink
    # Dense BF16 is half the sparse datasheet figure: H100 SXM 1,979 -> 989.5.
    assert models["H100 SXM"].bf16_dense_tflops == pytest.approx(989.5)


@pytest.mark.parametrize(
    ("reported", "mem_total_bytes", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", 85520809984, "H100 SXM"),
        ("NVIDIA H100 PCIe", None, "H100 PCIe"),
        ("NVIDIA H200", None, "H200"),
        ("NVIDIA A100-SXM4-40GB", None, "A100 40GB"),
        ("NVIDIA A100-SXM4-80GB", None, "A100 80GB"),
        ("NVIDIA A100-PCIE-40GB", None, "A100 40GB"),
        ("NVIDIA A100 80GB PCIe", None, "A100 80GB"),
        ("NVIDIA A100-SXM4", 42_505_273_344, "A100 40GB"),  # no size in the name: by memory
        ("NVIDIA L40S", None, "L40S"),
        ("NVIDIA L4", None, "L4"),
        ("NVIDIA A10G", None, "A10G"),
        ("NVIDIA GeForce RTX 4090", None, "RTX 4090"),
        ("NVIDIA GeForce RTX 5090", None, "RTX 5090"),
        ("NVIDIA B200", None, "B200"),
        ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", None, "H100 SXM"),
    ],
)
def test_reported_names_match_the_catalog(reported, mem_total_bytes, expected):
    model = gpu_model_for_reported_name(reported_name=reported, mem_total_bytes=mem_total_bytes)
    assert model is not None
    assert model.name == expected


@pytest.mark.parametrize(
    "reported", ["NVIDIA H100 NVL", "Tesla T4", "NVIDIA A100-SXM4", "", "NVIDIA L40"]
)
def test_unknown_or_ambiguous_names_are_not_guessed(reported):
    assert gpu_model_for_reported_name(reported_name=reported) is None


def test_operator_added_pattern_is_used():
    l4 = GpuModel.objects.get(name="L4")
    l4.match_patterns = [*l4.match_patterns, r"^l4 custom$"]
    l4.save()
    assert gpu_model_for_reported_name(reported_name="NVIDIA L4-Custom") == l4


def test_normalisation():
    assert normalise_gpu_name("NVIDIA GeForce RTX 4090") == "rtx 4090"
    assert normalise_gpu_name("NVIDIA A100-SXM4-40GB") == "a100 sxm4 40gb"
    assert normalise_gpu_name("NVIDIA H100 80GB HBM3 MIG 3g.40gb") == "h100 80gb hbm3"


def test_shipped_file_and_database_agree():
    assert {e["name"] for e in catalog_entries()} == set(
        GpuModel.objects.values_list("name", flat=True)
    )
