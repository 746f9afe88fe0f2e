"""Local GPUs through NVML (the ``pynvml`` module of the nvidia-ml-py package).

``NvmlSource`` reads every GPU, and every MIG instance when MIG is enabled, once per
``sample()``. Each reading is taken on its own: a field the GPU or driver does not support
(NotSupported, NoPermission, a function missing from an older driver) is recorded as
null and never stops the loop. The current clocks-event reasons come from
``nvmlDeviceGetCurrentClocksEventReasons``, or from the older
``nvmlDeviceGetCurrentClocksThrottleReasons`` on drivers before 535.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from collectors.records import GpuSample, RecordError, gpu_sample_from_mapping


@dataclass(frozen=True)
class NvmlDevice:
    uuid: str
    index: int
    name: str
    mem_total_bytes: int | None
    mig_parent_uuid: str | None = None
    mig_instance_id: int | None = None
    mig_profile: str = ""


@dataclass(frozen=True)
class GpuProcess:
    gpu_uuid: str
    pid: int
    used_bytes: int | None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlSource:
    def __init__(self, nvml: ModuleType | Any | None = None) -> None:
        if nvml is None:
            # Imported late: a host without the driver can still run the storage source.
            import pynvml

            nvml = pynvml
        self.nvml: Any = nvml
        self.errors: dict[str, int] = {}
        self._handles: list[tuple[NvmlDevice, Any]] = []

    # --- lifecycle ---------------------------------------------------------------------

    def open(self) -> list[NvmlDevice]:
        self.nvml.nvmlInit()
        self._handles = self._discover()
        return [device for device, _ in self._handles]

    def close(self) -> None:
        self.nvml.nvmlShutdown()

    def __enter__(self) -> NvmlSource:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading -----------------------------------------------------------------------

    def _try(self, what: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except self.nvml.NVMLError as exc:
            self.errors[f"{what}: {exc}"] = self.errors.get(f"{what}: {exc}", 0) + 1
            return None

    def _discover(self) -> list[tuple[NvmlDevice, Any]]:
        nvml = self.nvml
        found: list[tuple[NvmlDevice, Any]] = []
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            memory = self._try("memory", nvml.nvmlDeviceGetMemoryInfo, handle)
            name = _text(self._try("name", nvml.nvmlDeviceGetName, handle) or "")
            found.append((NvmlDevice(uuid, index, name, memory.total if memory else None), handle))
            mode = self._try("mig mode", nvml.nvmlDeviceGetMigMode, handle)
            if not mode or mode[0] != getattr(nvml, "NVML_DEVICE_MIG_ENABLE", 1):
                continue
            for slot in range(
                self._try("mig count", nvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
            ):
                mig = self._try(
                    "mig handle", nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot
                )
                if mig is None:
                    continue
                mig_memory = self._try("memory", nvml.nvmlDeviceGetMemoryInfo, mig)
                found.append(
                    (
                        NvmlDevice(
                            uuid=_text(nvml.nvmlDeviceGetUUID(mig)),
                            index=index,
                            name=name,
                            mem_total_bytes=mig_memory.total if mig_memory else None,
                            mig_parent_uuid=uuid,
                            mig_instance_id=self._try(
                                "gpu instance", nvml.nvmlDeviceGetGpuInstanceId, mig
                            ),
                        ),
                        mig,
                    )
                )
        return found

    def interconnect(self) -> str | None:
        """``nvlink`` when any GPU has an active NVLink, else ``pcie`` (NVML's NotSupported
        for a link: the GPU has none); None when this pynvml cannot ask (call ``open``
        first)."""
        nvml = self.nvml
        if not hasattr(nvml, "nvmlDeviceGetNvLinkState"):
            return None
        links = getattr(nvml, "NVML_NVLINK_MAX_LINKS", 18)
        enabled = getattr(nvml, "NVML_FEATURE_ENABLED", 1)
        whole = [handle for device, handle in self._handles if device.mig_parent_uuid is None]
        for handle in whole:
            for link in range(links):
                try:
                    state = nvml.nvmlDeviceGetNvLinkState(handle, link)
                except nvml.NVMLError:
                    break  # no such link: none beyond it either
                if state == enabled:
                    return "nvlink"
        return "pcie" if whole else None

    def _reasons(self, handle: Any) -> int | None:
        nvml = self.nvml
        for name in (
            "nvmlDeviceGetCurrentClocksEventReasons",
            "nvmlDeviceGetCurrentClocksThrottleReasons",
        ):
            call = getattr(nvml, name, None)
            if call is None:
                continue
            try:
                return int(call(handle))
            except nvml.NVMLError as exc:
                if "Function Not Found" in str(exc) or "FunctionNotFound" in type(exc).__name__:
                    continue
                self.errors[f"reasons: {exc}"] = self.errors.get(f"reasons: {exc}", 0) + 1
                return None
        return None

    def read(self, device: NvmlDevice, handle: Any, ts: datetime) -> dict[str, Any]:
        nvml, t = self.nvml, self._try
        out: dict[str, Any] = {"gpu_uuid": device.uuid, "ts": ts}
        memory = t("memory", nvml.nvmlDeviceGetMemoryInfo, handle)
        if memory is not None:
            out["mem_used_bytes"], out["mem_total_bytes"] = int(memory.used), int(memory.total)
        util = t("utilization", nvml.nvmlDeviceGetUtilizationRates, handle)
        if util is not None:
            out["sm_util_pct"] = float(util.gpu)
        power_mw = t("power", nvml.nvmlDeviceGetPowerUsage, handle)
        if power_mw is not None:
            out["power_w"] = power_mw / 1000.0
        limit_mw = t("power limit", nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        if limit_mw is not None:
            out["power_limit_w"] = limit_mw / 1000.0
        temp = t("temperature", nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        if temp is not None:
            out["temp_c"] = float(temp)
        clock = t("sm clock", nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
        if clock is not None:
            out["sm_clock_mhz"] = int(clock)
        clock_max = t("max sm clock", nvml.nvmlDeviceGetMaxClockInfo, handle, nvml.NVML_CLOCK_SM)
        if clock_max is not None:
            out["sm_clock_max_mhz"] = int(clock_max)
        reasons = self._reasons(handle)
        if reasons is not None:
            out["clocks_event_reasons"] = reasons
        for key, counter in (
            ("pcie_tx_bytes_per_s", "NVML_PCIE_UTIL_TX_BYTES"),
            ("pcie_rx_bytes_per_s", "NVML_PCIE_UTIL_RX_BYTES"),
        ):
            kb_per_s = t("pcie", nvml.nvmlDeviceGetPcieThroughput, handle, getattr(nvml, counter))
            if kb_per_s is not None:
                out[key] = kb_per_s * 1024.0
        energy = t("energy", nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        if energy is not None:
            out["energy_mj"] = int(energy)
        return out

    def sample(self, *, now: datetime | None = None) -> list[GpuSample]:
        """One sample per device; a device whose reading fails validation is counted."""
        if not self._handles:
            self.open()
        ts = now or datetime.now(UTC)
        samples = []
        for device, handle in self._handles:
            try:
                samples.append(gpu_sample_from_mapping(self.read(device, handle, ts), now=ts))
            except RecordError as exc:
                self.errors[f"{device.uuid}: {exc}"] = (
                    self.errors.get(f"{device.uuid}: {exc}", 0) + 1
                )
        return samples

    def devices(self) -> list[NvmlDevice]:
        if not self._handles:
            self.open()
        return [device for device, _ in self._handles]

    def processes(self) -> list[GpuProcess]:
        """Compute processes per GPU with the memory each holds (None when hidden)."""
        out = []
        for device, handle in self._handles:
            for proc in (
                self._try("processes", self.nvml.nvmlDeviceGetComputeRunningProcesses, handle) or []
            ):
                used = getattr(proc, "usedGpuMemory", None)
                out.append(
                    GpuProcess(device.uuid, int(proc.pid), int(used) if used is not None else None)
                )
        return out
