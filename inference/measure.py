"""Peak memory and device facts for reports: CUDA allocator statistics on a GPU; on the CPU,
the process's resident high-water mark (Linux VmHWM, reset through /proc/self/clear_refs)
and tracemalloc for Python-side allocations."""

from __future__ import annotations

import re
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from collectors.catalog import CatalogCandidate, catalog_entries, match_gpu_model

_STATUS = Path("/proc/self/status")


def _status_kib(field: str) -> int | None:
    try:
        match = re.search(rf"^{field}:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def rss_bytes() -> int | None:
    return _status_kib("VmRSS")


def rss_peak_reset() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False where it cannot be."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@dataclass
class PeakMemory:
    """Peak memory over a region: on CUDA the allocator's max allocated/reserved, on the
    CPU the resident high-water mark during the region (absolute, and its rise above the
    level at the start: memory the allocator already holds is reused, so a second run in
    one process rises little), and tracemalloc's peak."""

    device: torch.device
    baseline_rss: int | None = None
    allocated_bytes: int | None = None
    reserved_bytes: int | None = None
    rss_peak_bytes: int | None = None
    rss_rise_bytes: int | None = None
    tracemalloc_peak_bytes: int | None = None

    _traced_peak: int = 0

    @contextmanager
    def untraced(self) -> Iterator[None]:
        """Pause tracemalloc (it slows Python by about a third) around timed work; the
        peak so far is kept and the final figure is the larger of the two."""
        if self.device.type == "cuda" or not tracemalloc.is_tracing():
            yield
            return
        self._traced_peak = max(self._traced_peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        try:
            yield
        finally:
            tracemalloc.start()

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.baseline_rss = rss_bytes() if rss_peak_reset() else None
            tracemalloc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.allocated_bytes = torch.cuda.max_memory_allocated(self.device)
            self.reserved_bytes = torch.cuda.max_memory_reserved(self.device)
            return
        self.tracemalloc_peak_bytes = max(self._traced_peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        peak = _status_kib("VmHWM")
        if peak is not None and self.baseline_rss is not None:
            self.rss_peak_bytes = peak
            self.rss_rise_bytes = max(peak - self.baseline_rss, 0)

    @property
    def peak_bytes(self) -> int | None:
        return self.allocated_bytes if self.device.type == "cuda" else self.rss_rise_bytes


def device_describe(device: torch.device) -> dict[str, object]:
    """Name, catalog model and peak BF16 dense TFLOP/s (for MFU) of the device."""
    if device.type != "cuda":
        return {"type": "cpu", "name": "cpu", "threads": torch.get_num_threads()}
    name = torch.cuda.get_device_name(device)
    total = torch.cuda.get_device_properties(device).total_memory
    entries = {e["name"]: e for e in catalog_entries()}
    candidates = [
        CatalogCandidate(e["name"], e["vram_bytes"], e["match_patterns"]) for e in entries.values()
    ]
    model = match_gpu_model(name, candidates, mem_total_bytes=total)
    return {
        "type": "cuda",
        "name": name,
        "catalog_model": model,
        "mem_total_bytes": total,
        "bf16_dense_tflops": entries[model]["bf16_dense_tflops"] if model else None,
        "uuid": _cuda_uuid(device),
    }


def _cuda_uuid(device: torch.device) -> str | None:
    """The GPU's UUID as the host agent reports it (the collectors' NVML source)."""
    try:
        from collectors.nvml import NvmlSource

        with NvmlSource() as source:
            devices = source.devices()
    except Exception:  # NVML is optional for a report: no driver, no library
        return None
    index = device.index or 0
    return next((d.uuid for d in devices if d.index == index and not d.mig_parent_uuid), None)
