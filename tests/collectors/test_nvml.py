from __future__ import annotations

from datetime import UTC, datetime

import pynvml

from collectors.nvml import NvmlSource
from tests.collectors.fake_pynvml import FakeNvml

AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_the_fake_matches_pynvml_names():
    # Every function the source calls exists in the real module with that name.
    called = [n for n in dir(FakeNvml) if n.startswith("nvml")]
    missing = [n for n in called if not hasattr(pynvml, n)]
    assert not missing
    for constant in ("NVML_TEMPERATURE_GPU", "NVML_CLOCK_SM", "NVML_PCIE_UTIL_TX_BYTES",
                     "NVML_PCIE_UTIL_RX_BYTES", "NVML_DEVICE_MIG_ENABLE"):  # fmt: skip
        assert getattr(pynvml, constant) == getattr(FakeNvml, constant)
    assert hasattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons")


def test_reads_every_gpu_and_mig_instance():
    source = NvmlSource(FakeNvml())
    devices = source.open()
    assert [(d.uuid, d.mig_parent_uuid, d.mig_instance_id) for d in devices] == [
        ("GPU-h100", None, None), ("MIG-aaaa", "GPU-h100", 1), ("MIG-bbbb", "GPU-h100", 2), ("GPU-l4", None, None),
    ]  # fmt: skip
    assert devices[3].name == "NVIDIA L4"  # bytes from older bindings are decoded
    samples = {s.gpu_uuid: s for s in source.sample(now=AT)}
    h100 = samples["GPU-h100"]
    assert (h100.sm_util_pct, h100.power_w, h100.power_limit_w, h100.temp_c) == (
        87.0,
        612.4,
        700.0,
        71.0,
    )
    assert (h100.mem_used_bytes, h100.mem_total_bytes) == (61203283968, 85520809984)
    assert (h100.sm_clock_mhz, h100.sm_clock_max_mhz, h100.clocks_event_reasons) == (1755, 1980, 4)
    assert h100.pcie_tx_bytes_per_s == 1171875 * 1024.0
    assert h100.energy_mj == 912345678
    # MIG instances report memory only; the unsupported readings are null, not errors.
    mig = samples["MIG-aaaa"]
    assert (mig.mem_used_bytes, mig.sm_util_pct, mig.power_w) == (1073741824, None, None)
    source.close()


def test_unsupported_fields_are_null_and_counted():
    source = NvmlSource(FakeNvml())
    l4 = {s.gpu_uuid: s for s in source.sample(now=AT)}["GPU-l4"]
    assert l4.power_w is None
    assert l4.power_limit_w == 72.0
    assert any(key.startswith("power: Not Supported") for key in source.errors)


def test_old_driver_falls_back_to_throttle_reasons():
    fake = FakeNvml(new_driver=False)
    assert not hasattr(fake, "nvmlDeviceGetCurrentClocksEventReasons")
    samples = {s.gpu_uuid: s for s in NvmlSource(fake).sample(now=AT)}
    assert samples["GPU-h100"].clocks_event_reasons == 4
    assert samples["GPU-l4"].clocks_event_reasons == 1


def test_running_processes_with_their_memory():
    source = NvmlSource(FakeNvml())
    source.open()
    assert [(p.gpu_uuid, p.pid, p.used_bytes) for p in source.processes()] == [
        ("GPU-h100", 4242, 60000000000)
    ]
