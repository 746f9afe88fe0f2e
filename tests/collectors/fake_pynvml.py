"""A stand-in for the ``pynvml`` module, exposing the functions and constants NvmlSource
calls with the same signatures and units. No GPU exists on the test machines; the real
module is exercised on a GPU host (docs/benchmarks.md records such a run)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

NVML_TEMPERATURE_GPU = 0
NVML_CLOCK_SM = 1
NVML_PCIE_UTIL_TX_BYTES = 0
NVML_PCIE_UTIL_RX_BYTES = 1
NVML_DEVICE_MIG_ENABLE = 1


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    def __str__(self) -> str:
        return "Not Supported"


class NVMLError_FunctionNotFound(NVMLError):
    def __str__(self) -> str:
        return "Function Not Found"


class NVMLError_NotFound(NVMLError):
    def __str__(self) -> str:
        return "Not Found"


class NVMLError_GpuIsLost(NVMLError):
    def __str__(self) -> str:
        return "GPU is lost"


class FakeNvml:
    """GPU 0: an H100 with MIG enabled (two instances in three slots); GPU 1: an L4 on an
    old driver (throttle-reasons call only) whose power reading is not supported."""

    NVMLError = NVMLError
    NVML_TEMPERATURE_GPU = NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_PCIE_UTIL_TX_BYTES = NVML_PCIE_UTIL_TX_BYTES
    NVML_PCIE_UTIL_RX_BYTES = NVML_PCIE_UTIL_RX_BYTES
    NVML_DEVICE_MIG_ENABLE = NVML_DEVICE_MIG_ENABLE

    def __init__(self, *, new_driver: bool = True) -> None:
        self.initialised = False
        self.lost: set[int] = set()  # indexes of GPUs that died
        self.gpus = [
            {"uuid": "GPU-h100", "name": "NVIDIA H100 80GB HBM3", "total": 85520809984, "used": 61203283968,
             "util": 87, "power_mw": 612400, "limit_mw": 700000, "temp": 71, "clock": 1755, "max_clock": 1980,
             "reasons": 0x4, "tx_kb": 1171875, "rx_kb": 332031, "energy": 912345678, "mig": True},
            {"uuid": "GPU-l4", "name": b"NVIDIA L4", "total": 24152899584, "used": 1048576, "util": 0,
             "power_mw": None, "limit_mw": 72000, "temp": 35, "clock": 210, "max_clock": 2040,
             "reasons": 0x1, "tx_kb": 0, "rx_kb": 0, "energy": 1000, "mig": False},
        ]  # fmt: skip
        self.migs = {
            0: {"uuid": "MIG-aaaa", "gi": 1, "total": 42949672960, "used": 1073741824},
            2: {"uuid": "MIG-bbbb", "gi": 2, "total": 42949672960, "used": 0},
        }
        if new_driver:
            self.nvmlDeviceGetCurrentClocksEventReasons = self._reasons

    # handles are ("gpu", i) or ("mig", i, slot)
    def nvmlInit(self) -> None:
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> tuple[Any, ...]:
        return ("gpu", index)

    def _gpu(self, handle: tuple[Any, ...]) -> dict[str, Any]:
        # A GPU that fell off the bus answers every call with "GPU is lost", as NVML does.
        if handle[1] in self.lost:
            raise NVMLError_GpuIsLost()
        return self.gpus[handle[1]]

    def nvmlDeviceGetUUID(self, handle: tuple[Any, ...]) -> str:
        return self.migs[handle[2]]["uuid"] if handle[0] == "mig" else self._gpu(handle)["uuid"]

    def nvmlDeviceGetName(self, handle: tuple[Any, ...]) -> Any:
        return self._gpu(handle)["name"]

    def nvmlDeviceGetMemoryInfo(self, handle: tuple[Any, ...]) -> SimpleNamespace:
        src = self.migs[handle[2]] if handle[0] == "mig" else self._gpu(handle)
        return SimpleNamespace(
            total=src["total"], used=src["used"], free=src["total"] - src["used"]
        )

    def _gpu_only(self, handle: tuple[Any, ...]) -> dict[str, Any]:
        if handle[0] == "mig":
            raise NVMLError_NotSupported()
        return self._gpu(handle)

    def nvmlDeviceGetUtilizationRates(self, handle: tuple[Any, ...]) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._gpu_only(handle)["util"], memory=0)

    def nvmlDeviceGetPowerUsage(self, handle: tuple[Any, ...]) -> int:
        value = self._gpu_only(handle)["power_mw"]
        if value is None:
            raise NVMLError_NotSupported()
        return int(value)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: tuple[Any, ...]) -> int:
        return int(self._gpu_only(handle)["limit_mw"])

    def nvmlDeviceGetTemperature(self, handle: tuple[Any, ...], sensor: int) -> int:
        assert sensor == NVML_TEMPERATURE_GPU
        return int(self._gpu_only(handle)["temp"])

    def nvmlDeviceGetClockInfo(self, handle: tuple[Any, ...], clock: int) -> int:
        assert clock == NVML_CLOCK_SM
        return int(self._gpu_only(handle)["clock"])

    def nvmlDeviceGetMaxClockInfo(self, handle: tuple[Any, ...], clock: int) -> int:
        return int(self._gpu_only(handle)["max_clock"])

    def _reasons(self, handle: tuple[Any, ...]) -> int:
        return int(self._gpu_only(handle)["reasons"])

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: tuple[Any, ...]) -> int:
        return self._reasons(handle)

    def nvmlDeviceGetPcieThroughput(self, handle: tuple[Any, ...], counter: int) -> int:
        gpu = self._gpu_only(handle)
        return int(gpu["tx_kb"] if counter == NVML_PCIE_UTIL_TX_BYTES else gpu["rx_kb"])

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: tuple[Any, ...]) -> int:
        return int(self._gpu_only(handle)["energy"])

    def nvmlDeviceGetNvLinkState(self, handle: tuple[Any, ...], link: int) -> int:
        # The H100 has 18 links, the first two active; the L4 has none.
        if handle[0] != "gpu" or self.gpus[handle[1]]["name"] == b"NVIDIA L4":
            raise NVMLError_NotSupported()
        if link >= 18:
            raise NVMLError_NotFound()
        return 1 if link < 2 else 0

    def nvmlDeviceGetMigMode(self, handle: tuple[Any, ...]) -> list[int]:
        gpu = self._gpu(handle)
        if not gpu["mig"]:
            raise NVMLError_NotSupported()
        return [1, 1]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: tuple[Any, ...]) -> int:
        return 3

    def nvmlDeviceGetMigDeviceHandleByIndex(
        self, handle: tuple[Any, ...], slot: int
    ) -> tuple[Any, ...]:
        if slot not in self.migs:
            raise NVMLError_NotFound()
        return ("mig", handle[1], slot)

    def nvmlDeviceGetGpuInstanceId(self, handle: tuple[Any, ...]) -> int:
        return int(self.migs[handle[2]]["gi"])

    def nvmlDeviceGetComputeRunningProcesses(
        self, handle: tuple[Any, ...]
    ) -> list[SimpleNamespace]:
        if handle == ("gpu", 0):
            return [SimpleNamespace(pid=4242, usedGpuMemory=60000000000)]
        return []
