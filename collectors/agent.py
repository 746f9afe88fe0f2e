"""The FrameOps host agent: poll NVML and storage, batch, push, spool when the server is away.

    python -m collectors.agent --server https://frameops.example --key fo_... \
        [--interval 1] [--flush-every 10] [--spool /var/spool/frameops] [--spool-max-mb 256]
        [--send-raw] [--raw-ring-mb 64]
    python -m collectors.agent --server ... --key ... --replay-raw SINCE[,UNTIL]

GPU samples are rolled up into minutes on the host (``collectors.rollups``, the server's
rules) and one row per GPU-minute is sent once its minute has closed; ``--send-raw`` sends
every sample instead, for those who want second-level history on the server. While it
sends minutes, the agent keeps its raw samples in a bounded ring on disk (the spool's
``raw-ring`` folder, ``--raw-ring-mb``, oldest dropped first); ``--replay-raw`` sends the
ring's samples of a time range to the server as raw samples (to look at a GPU second by
second after the fact) and exits. The server stores each (gpu, ts) once, so replaying a
range twice stores nothing twice, and its minutes stay those the agent sent.

It registers its node and GPUs (``POST /api/v1/nodes``), then polls every ``--interval``
seconds and pushes gzip NDJSON batches every ``--flush-every`` polls. When the server is
away (unreachable, 502/503/504, 429, or the key refused), a batch is appended to the
on-disk spool; spooled batches are replayed oldest first, before new data, once the server
answers again. A batch the server fails on (another 5xx) is retried with exponential
backoff while later batches go ahead; after ``MAX_ATTEMPTS`` it is set aside in the
spool's ``dead-letter`` folder with the server's answer, counted and logged, as is a batch
the server refuses (4xx). Lines the server rejects one by one (a 200 with ``rejected``)
are never retried. The spool is bounded: when full, the oldest batches are dropped and
counted. The same happens when the spool's disk fills before the bound (ENOSPC): the
oldest batches make room for the newest, and what was dropped is logged with counts.
The server stores each (gpu, ts) once, so a batch retried after a lost response is
counted as duplicates, not stored twice.
"""

from __future__ import annotations

import argparse
import errno
import gzip
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import requests

from collectors.records import GpuSample, RecordError, parse_ts
from collectors.rollups import MAX_SAMPLE_GAP_S, gpu_minutes

log = logging.getLogger("frameops.agent")

GPU_PATH = "/api/v1/ingest/gpu-samples"
MINUTES_PATH = "/api/v1/ingest/gpu-minutes"
STORAGE_PATH = "/api/v1/ingest/storage-samples"
NODES_PATH = "/api/v1/nodes"


class SampleSource(Protocol):
    def sample(self, *, now: datetime | None = None) -> list[Any]: ...


class PushError(Exception):
    """The server could not take the batch now; it goes to the spool."""


class BatchRefused(Exception):
    """The server refused the batch for good (4xx): spooling it would not help."""

    def __init__(self, message: str, answer: str = "") -> None:
        super().__init__(message)
        self.answer = answer


class BatchFailed(Exception):
    """The server is up but failed on this batch (a 5xx other than 502/503/504): retried
    with backoff, then set aside, while later batches go ahead."""

    def __init__(self, message: str, answer: str = "") -> None:
        super().__init__(message)
        self.answer = answer


MAX_ATTEMPTS = 5
RETRY_BASE_S = 2.0
RETRY_MAX_S = 300.0
SERVER_AWAY = (429, 502, 503, 504)  # a proxy or an overloaded server: keep and wait


@dataclass
class AgentStats:
    polls: int = 0
    pushed_batches: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    spooled_batches: int = 0
    replayed_batches: int = 0
    dropped_batches: int = 0
    dropped_samples: int = 0
    refused_batches: int = 0
    failed_attempts: int = 0
    dead_letter_batches: int = 0
    dead_letter_samples: int = 0
    late_dropped: int = 0
    errors: list[str] = field(default_factory=list)


class Spool:
    """Batches waiting for the server, one file each, replayed in the order written."""

    def __init__(self, directory: Path, *, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        directory.mkdir(parents=True, exist_ok=True)
        existing = [int(p.name.split("-", 1)[0]) for p in self._files()]
        self._seq = max(existing, default=0)

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.ndjson.gz"))

    def __len__(self) -> int:
        return len(self._files())

    def write(self, kind: str, body: bytes, lines: int) -> Path:
        """Write one gzip batch (``last`` names it)."""
        self._seq += 1
        path = self.directory / f"{self._seq:012d}-{kind}-{lines}.ndjson.gz"
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_bytes(body)
        except OSError:
            tmp.unlink(missing_ok=True)  # half a batch is never left behind
            raise
        os.replace(tmp, path)  # a crash never leaves half a batch to replay
        self.last = path
        return path

    def append(self, kind: str, body: bytes, lines: int) -> tuple[int, int, bool]:
        """Write one gzip batch: (batches, samples) dropped to make room for it, and whether
        it was stored. Room is made under ``max_bytes``, and on a full disk by dropping the
        oldest batches until the new one fits (the newest data is worth most); a batch that
        does not fit on an empty spool is itself dropped."""
        dropped = dropped_lines = 0
        while True:
            try:
                self.write(kind, body, lines)
                break
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                files = self._files()
                if not files:
                    return dropped + 1, dropped_lines + lines, False
                dropped_lines += self._drop(files[0])
                dropped += 1
        files = self._files()
        total = sum(p.stat().st_size for p in files)
        while total > self.max_bytes and len(files) > 1:
            oldest = files.pop(0)
            total -= oldest.stat().st_size
            dropped += 1
            dropped_lines += self._drop(oldest)
        return dropped, dropped_lines, True

    @staticmethod
    def _drop(path: Path) -> int:
        path.unlink()
        return int(path.name.split("-")[2].split(".")[0])

    def pending(self) -> list[tuple[Path, str, bytes]]:
        return [(p, p.name.split("-")[1], p.read_bytes()) for p in self._files()]

    @property
    def dead_letter(self) -> Path:
        return self.directory / "dead-letter"

    def set_aside(self, path: Path, *, reason: str, answer: str, attempts: int) -> int:
        """Move a batch to ``dead-letter/`` with the server's answer beside it; returns its
        sample count."""
        self.dead_letter.mkdir(exist_ok=True)
        target = self.dead_letter / path.name
        os.replace(path, target)
        note = {"reason": reason, "answer": answer[:4000], "attempts": attempts,
                "set_aside_at": datetime.now(UTC).isoformat()}  # fmt: skip
        target.with_name(target.name + ".json").write_text(json.dumps(note, indent=1))
        return int(path.name.split("-")[2].split(".")[0])


class Agent:
    def __init__(
        self,
        *,
        server: str,
        key: str,
        sources: dict[str, SampleSource],
        spool: Spool,
        registration: dict[str, Any] | None = None,
        session: requests.Session | None = None,
        timeout_s: float = 10.0,
        storage_devices: Callable[[], list[Any]] | None = None,
        rescan_s: float = 300.0,
        max_attempts: int = MAX_ATTEMPTS,
        retry_base_s: float = RETRY_BASE_S,
        minutes: bool = False,
        minute_grace_s: float = 10.0,
        pressure_fraction: float = 0.92,
        late_window_s: float = 900.0,
        raw_ring: Spool | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.sources = sources
        self.spool = spool
        self.registration = registration
        self.registered = registration is None
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"
        self.timeout_s = timeout_s
        self.stats = AgentStats()
        self._pending: dict[str, list[str]] = {kind: [] for kind in sources}
        # Storage devices come and go (a volume attached, a filesystem grown): rescanned
        # every ``rescan_s``; a change registers the node again.
        self._storage_devices = storage_devices
        self._rescan_s = rescan_s
        self._scanned_at = time.monotonic()
        # Spooled batches the server failed on: file name -> (attempts, retry not before).
        self._attempts: dict[str, tuple[int, float]] = {}
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        # Minute rollups at the edge: GPU samples stay here until their minute closes (the
        # sample after its end is known, plus a grace for stragglers), then one row per
        # GPU-minute goes to the server instead of sixty samples.
        self.minutes = minutes and "gpu" in sources
        self.minute_grace_s = minute_grace_s
        self.pressure_fraction = pressure_fraction
        self._gpu_samples: dict[str, list[GpuSample]] = {}
        self._sent_until: dict[str, datetime] = {}
        # Samples are kept this long after their minute was sent, to re-send minutes that a
        # late sample changes (the server replaces a minute sent again).
        self.late_window_s = late_window_s
        self._resend_from: dict[str, datetime] = {}
        self._kept_from: dict[str, datetime] = {}  # samples before this were let go
        if self.minutes:
            self._pending["minute"] = []
        # Raw samples kept on the host for replay while minutes are sent.
        self.raw_ring = raw_ring if self.minutes else None
        self._ring_lines: list[str] = []

    # --- polling -----------------------------------------------------------------------

    def poll(self, *, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        for kind, source in self.sources.items():
            try:
                samples = source.sample(now=now)
                if self.minutes and kind == "gpu":
                    for sample in samples:
                        self._gpu_sample_add(sample)
                    if self.raw_ring is not None:
                        self._ring_lines.extend(json.dumps(s.as_json()) for s in samples)
                else:
                    self._pending[kind].extend(json.dumps(s.as_json()) for s in samples)
            except Exception as exc:  # a failing source must not stop the others
                self._error(f"{kind} source: {exc}")
        self.stats.polls += 1

    def _gpu_sample_add(self, sample: GpuSample) -> None:
        """Hold a sample for its minute. One that arrives after its minute was sent (a late
        reading, a replayed source) reopens the minutes it changes: its own and the one
        before it, whose last interval it shortens. Within ``late_window_s`` the agent
        still holds the samples to recompute them; an older one is dropped and counted."""
        uuid = sample.gpu_uuid
        series = self._gpu_samples.setdefault(uuid, [])
        sent = self._sent_until.get(uuid)
        if sent is not None and sample.ts < sent:
            reach = timedelta(seconds=MAX_SAMPLE_GAP_S)
            # Its minutes need the samples two caps before it; were they let go already?
            kept_from = self._kept_from.get(uuid)
            if kept_from is not None and sample.ts - 2 * reach < kept_from:
                self.stats.late_dropped += 1
                self._error(
                    f"sample of {uuid} at {sample.ts.isoformat()} came after its minute was "
                    f"sent and past the {self.late_window_s:.0f} s kept: dropped"
                )
                return
            reopen = (sample.ts - reach).replace(second=0, microsecond=0)
            self._resend_from[uuid] = min(self._resend_from.get(uuid, reopen), reopen)
        series.append(sample)

    def _close_minutes(self) -> None:
        """Roll up every GPU's minutes that have closed: a minute is closed once a sample
        ``MAX_SAMPLE_GAP_S`` plus the grace past its end has been seen (its last interval
        is then known). Samples no later minute needs are let go."""
        reach = timedelta(seconds=MAX_SAMPLE_GAP_S)
        for uuid, series in self._gpu_samples.items():
            if not series:
                continue
            series.sort(key=lambda sample: sample.ts)
            latest = series[-1].ts - reach - timedelta(seconds=self.minute_grace_s)
            end = latest.replace(second=0, microsecond=0)
            start = self._sent_until.get(uuid, series[0].ts.replace(second=0, microsecond=0))
            start = min(start, self._resend_from.pop(uuid, start))  # minutes a late one changed
            if end <= start:
                continue
            after = next((x for x in series if x.ts >= end + reach), None)
            rows = gpu_minutes(series, start=start, end=end, after=after,
                               pressure_fraction=self.pressure_fraction)  # fmt: skip
            self._pending["minute"].extend(json.dumps(row.as_json()) for row in rows)
            self._sent_until[uuid] = end
            keep = end - 2 * reach - timedelta(seconds=self.late_window_s)
            if series[0].ts < keep:
                self._kept_from[uuid] = keep
            self._gpu_samples[uuid] = [x for x in series if x.ts >= keep]

    # --- pushing -----------------------------------------------------------------------

    def _error(self, message: str) -> None:
        log.warning(message)
        self.stats.errors = [*self.stats.errors[-49:], message]

    def _post(self, path: str, body: bytes, *, gzipped: bool) -> dict[str, Any]:
        headers = {"Content-Type": "application/x-ndjson"}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        try:
            response = self.session.post(
                self.server + path, data=body, headers=headers, timeout=self.timeout_s
            )
        except requests.RequestException as exc:
            raise PushError(f"{path}: {exc}") from exc
        if response.status_code in SERVER_AWAY:
            raise PushError(f"{path}: HTTP {response.status_code}")
        if response.status_code >= 500:
            raise BatchFailed(f"{path}: HTTP {response.status_code}", response.text[:4000])
        if response.status_code in (401, 403):
            # The key is wrong or lacks ingest:write: keep the data until an operator fixes it.
            raise PushError(f"{path}: HTTP {response.status_code} {response.text[:200]}")
        try:
            payload: dict[str, Any] = response.json()
        except ValueError as exc:
            raise PushError(f"{path}: unreadable response") from exc
        if response.status_code >= 400:
            raise BatchRefused(
                f"{path}: HTTP {response.status_code} {payload.get('message', '')}",
                response.text[:4000],
            )
        return payload

    def _rescan_storage(self) -> None:
        if self._storage_devices is None or self.registration is None:
            return
        if time.monotonic() - self._scanned_at < self._rescan_s:
            return
        self._scanned_at = time.monotonic()
        given = {
            e["name"]: e["volume_type"]
            for e in self.registration.get("storage", [])
            if "volume_type" in e
        }
        try:
            found = storage_registration(self._storage_devices(), given)
        except OSError as exc:
            self._error(f"storage scan: {exc}")
            return
        if found != self.registration.get("storage", []):
            log.info("storage devices changed: registering again")
            self.registration["storage"] = found
            self.registered = False

    def _register(self) -> None:
        self._rescan_storage()
        if self.registered or self.registration is None:
            return
        body = json.dumps(self.registration).encode()
        try:
            response = self.session.post(
                self.server + NODES_PATH,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=self.timeout_s,
            )
        except requests.RequestException as exc:
            raise PushError(f"register: {exc}") from exc
        if response.status_code >= 400:
            raise PushError(f"register: HTTP {response.status_code} {response.text[:200]}")
        self.registered = True
        try:
            known = response.json()
        except ValueError:
            known = {}
        log.info(
            "registered node %s: %d GPU(s), instance type %s, pricing model %s, interconnect %s",
            self.registration.get("hostname"),
            len(known.get("gpus", [])),
            known.get("instance_type") or "(none)",
            known.get("pricing_model", "?"),
            known.get("interconnect", "?"),
        )
        for warning in known.get("warnings", []):
            log.warning("server: %s", warning)

    def _count(self, payload: dict[str, Any]) -> None:
        self.stats.accepted += int(payload.get("accepted", 0))
        self.stats.duplicate += int(payload.get("duplicate", 0))
        self.stats.rejected += int(payload.get("rejected", 0))
        for error in payload.get("errors", [])[:5]:
            line, name = error.get("line"), error.get("field")
            self._error(f"server rejected line {line}: {name}: {error.get('message')}")

    def _send(self, kind: str, body: bytes) -> None:
        path = {"gpu": GPU_PATH, "minute": MINUTES_PATH}.get(kind, STORAGE_PATH)
        self._count(self._post(path, body, gzipped=True))
        self.stats.pushed_batches += 1

    def _set_aside(self, path: Path, exc: BatchRefused | BatchFailed, attempts: int) -> None:
        samples = self.spool.set_aside(path, reason=str(exc), answer=exc.answer, attempts=attempts)
        self._attempts.pop(path.name, None)
        self.stats.dead_letter_batches += 1
        self.stats.dead_letter_samples += samples
        self._error(
            f"batch {path.name} ({samples} samples) set aside in {self.spool.dead_letter} "
            f"after {attempts} attempt(s): {exc}"
        )

    def _replay(self) -> bool:
        """Push spooled batches oldest first; False when the server is still away. A batch
        the server fails on waits out its backoff while the later ones go ahead."""
        now = time.monotonic()
        for path, kind, body in self.spool.pending():
            attempts, retry_at = self._attempts.get(path.name, (0, 0.0))
            if retry_at > now:
                continue
            try:
                self._send(kind, body)
            except PushError as exc:
                self._error(f"replay stopped: {exc}")
                return False
            except BatchRefused as exc:
                self.stats.refused_batches += 1
                self._set_aside(path, exc, attempts + 1)
                continue
            except BatchFailed as exc:
                self._failed(path, exc, attempts + 1)
                continue
            path.unlink(missing_ok=True)
            self._attempts.pop(path.name, None)
            self.stats.replayed_batches += 1
        return True

    def _failed(self, path: Path, exc: BatchFailed, attempts: int) -> None:
        self.stats.failed_attempts += 1
        if attempts >= self.max_attempts:
            self._set_aside(path, exc, attempts)
            return
        delay = min(self.retry_base_s * 2 ** (attempts - 1), RETRY_MAX_S)
        self._attempts[path.name] = (attempts, time.monotonic() + delay)
        self._error(f"batch {path.name} failed (attempt {attempts}), retry in {delay:.0f} s: {exc}")

    def _ring_write(self) -> None:
        """Keep this flush's raw samples in the ring; a full ring drops its oldest files,
        and a ring that cannot be written is logged, never fatal to sending minutes."""
        if self.raw_ring is None or not self._ring_lines:
            return
        lines, self._ring_lines = self._ring_lines, []
        try:
            self.raw_ring.append("gpu", gzip.compress("\n".join(lines).encode()), len(lines))
        except OSError as exc:
            self._error(
                f"raw ring ({self.raw_ring.directory}): {exc}; {len(lines)} samples not kept"
            )

    def flush(self) -> None:
        if self.minutes:
            self._close_minutes()
            self._ring_write()
        batches = []
        for kind, lines in self._pending.items():
            if lines:
                batches.append((kind, gzip.compress("\n".join(lines).encode()), len(lines)))
                self._pending[kind] = []
        try:
            self._register()
            server_up = self._replay()
        except PushError as exc:
            self._error(str(exc))
            server_up = False
        for kind, body, count in batches:
            failed: BatchFailed | None = None
            if server_up:
                try:
                    self._send(kind, body)
                    continue
                except PushError as exc:
                    self._error(str(exc))
                    server_up = False
                except BatchRefused as exc:
                    self.stats.refused_batches += 1
                    path = self.spool.write(kind, body, count)
                    self._set_aside(path, exc, 1)
                    continue
                except BatchFailed as exc:
                    failed = exc
            dropped, dropped_lines, stored = self.spool.append(kind, body, count)
            if stored:
                self.stats.spooled_batches += 1
                if failed is not None:
                    self._failed(self.spool.last, failed, 1)
            self.stats.dropped_batches += dropped
            self.stats.dropped_samples += dropped_lines
            if dropped:
                what = "the oldest" if stored else "every spooled and this"
                self._error(
                    f"spool full ({self.spool.directory}): dropped {what} {dropped} batch(es), "
                    f"{dropped_lines} samples; {self.stats.dropped_samples} dropped since start"
                )

    def run(self, *, interval_s: float, flush_every: int, should_stop: Callable[[], bool]) -> None:
        next_poll = time.monotonic()
        while not should_stop():
            self.poll()
            if self.stats.polls % flush_every == 0:
                self.flush()
            next_poll += interval_s
            time.sleep(max(0.0, next_poll - time.monotonic()))
        self.flush()


PRICING_MODELS = ("on-demand", "spot", "reserved", "on-prem")
INTERCONNECTS = ("pcie", "nvlink")


def node_registration(
    *,
    hostname: str,
    site: str,
    provider: str,
    region: str,
    instance_type: str | None,
    devices: Iterable[Any],
    pricing_model: str | None = None,
    interconnect: str | None = None,
    volume_types: dict[str, str] | None = None,
    storage: Iterable[Any] = (),
) -> dict[str, Any]:
    """The registration body. Pricing fields the operator did not give (and NVML could not
    tell) are left out, so the server keeps what it has: a restart never resets a node's
    pricing model, instance type or interconnect."""
    gpus = [
        {
            "uuid": d.uuid,
            "index": d.index,
            "model": d.name,
            "mem_total_bytes": d.mem_total_bytes,
            **(
                {"mig_parent_uuid": d.mig_parent_uuid, "mig_instance_id": d.mig_instance_id}
                if d.mig_parent_uuid
                else {}
            ),
        }
        for d in devices
    ]
    optional = {
        "instance_type": instance_type,
        "pricing_model": pricing_model,
        "interconnect": interconnect,
    }
    body: dict[str, Any] = {
        "hostname": hostname,
        "site": site,
        "provider": provider,
        "region": region,
        **{k: v for k, v in optional.items() if v},
        "gpus": gpus,
    }
    body["storage"] = storage_registration(storage, volume_types or {})
    if not body["storage"]:
        del body["storage"]
    return body


def storage_registration(devices: Iterable[Any], volume_types: dict[str, str]) -> list[Any]:
    """The devices (``StorageDeviceInfo``) as registration entries, with the volume types
    the operator gave; a volume type for a device not found is sent on its own."""
    entries = {}
    for d in devices:
        entry = {k: v for k, v in d.as_json().items() if v not in (None, "")}
        entries[d.name] = entry
    for name, kind in volume_types.items():
        entries.setdefault(name, {"name": name})["volume_type"] = kind
    return [entries[name] for name in sorted(entries)]


def _volume_type(value: str) -> tuple[str, str]:
    device, sep, kind = value.partition("=")
    if not sep or not device.strip() or not kind.strip():
        raise argparse.ArgumentTypeError(f"{value!r}: use DEVICE=VOLUME_TYPE, e.g. nvme0n1=gp3")
    return device.strip(), kind.strip()


def _nvml_open() -> tuple[Any, list[Any]]:
    """NVML's source and devices, or (None, []) with a warning where NVML is not there (no
    driver, no GPU): the agent then reports storage only."""
    try:
        from collectors.nvml import NvmlSource

        nvml = NvmlSource()
        return nvml, nvml.open()
    except Exception as exc:  # pynvml raises its own NVMLError subclasses, or ImportError
        log.warning(
            "NVML is not available on this host (%s: %s): reporting storage only. Install "
            "the NVIDIA driver to report GPUs, or pass --no-gpu on hosts without GPUs.",
            type(exc).__name__,
            exc,
        )
        return None, []


def startup_summary(server: str, hostname: str, gpus: list[Any], storage: list[Any]) -> str:
    """What the agent will report, for the person who just started it."""
    lines = [f"reporting {hostname} to {server}:"]
    if gpus:
        for d in gpus:
            memory = f"{d.mem_total_bytes / 2**30:.0f} GiB" if d.mem_total_bytes else "memory ?"
            mig = f" (MIG {d.mig_instance_id} of {d.mig_parent_uuid})" if d.mig_parent_uuid else ""
            name = d.name or "unknown model"
            lines.append(f"  GPU {d.index}: {name}, {memory}, {d.uuid}{mig}")
    else:
        lines.append("  no GPUs (storage only)")
    for s in storage:
        size = f"{s.capacity_bytes / 1e9:,.0f} GB" if s.capacity_bytes else "size unknown"
        fs = f"{s.filesystem} on {s.mount_point}" if s.mount_point else "not mounted"
        lines.append(f"  storage {s.name}: {s.kind}, {size}, {fs}")
    if not storage:
        lines.append("  no storage devices found")
    return "\n".join(lines)


RING_FOLDER = "raw-ring"
REPLAY_BATCH = 10_000


def _parse_range(text: str) -> tuple[datetime, datetime]:
    since_text, _, until_text = text.partition(",")
    since = parse_ts(since_text.strip())
    until = parse_ts(until_text.strip()) if until_text.strip() else datetime.now(UTC)
    if until <= since:
        raise ValueError(f"the range ends ({until.isoformat()}) before it starts")
    return since, until


def raw_replay(
    ring: Path, *, server: str, key: str, since: datetime, until: datetime,
    session: requests.Session | None = None, timeout_s: float = 30.0,
) -> dict[str, int]:  # fmt: skip
    """Send the ring's raw samples of ``[since, until)`` to the server's sample endpoint in
    batches of ``REPLAY_BATCH``; returns what was read, sent and what the server said."""
    session = session or requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    counts = dict.fromkeys(("files", "sent", "accepted", "duplicate", "rejected"), 0)
    batch: list[str] = []

    def send() -> None:
        body = gzip.compress("\n".join(batch).encode())
        answer = session.post(
            f"{server.rstrip('/')}{GPU_PATH}", data=body, timeout=timeout_s,
            headers={"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"},
        )  # fmt: skip
        if answer.status_code != 200:
            raise PushError(f"replay refused: HTTP {answer.status_code} {answer.text[:300]}")
        payload = answer.json()
        counts["sent"] += len(batch)
        for name in ("accepted", "duplicate", "rejected"):
            counts[name] += int(payload.get(name, 0))
        batch.clear()

    for path in sorted(ring.glob("*.ndjson.gz")):
        counts["files"] += 1
        for line in gzip.decompress(path.read_bytes()).decode().splitlines():
            if since <= parse_ts(json.loads(line)["ts"]) < until:
                batch.append(line)
                if len(batch) >= REPLAY_BATCH:
                    send()
    if batch:
        send()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m collectors.agent", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--server", required=True, help="FrameOps base URL")
    parser.add_argument(
        "--key",
        default=os.environ.get("FRAMEOPS_API_KEY"),
        help="API key with ingest:write (or FRAMEOPS_API_KEY)",
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--flush-every", type=int, default=10, help="polls per pushed batch")
    parser.add_argument(
        "--spool",
        default="/var/spool/frameops",
        help="directory for batches the server did not take",
    )
    parser.add_argument("--spool-max-mb", type=float, default=256.0)
    parser.add_argument("--hostname", default=socket.gethostname())
    parser.add_argument("--site", default=os.environ.get("FRAMEOPS_SITE", "default"))
    parser.add_argument("--provider", default=os.environ.get("FRAMEOPS_PROVIDER", "on-prem"))
    parser.add_argument("--region", default=os.environ.get("FRAMEOPS_REGION", ""))
    parser.add_argument(
        "--instance-type",
        default=os.environ.get("FRAMEOPS_INSTANCE_TYPE") or None,
        help="priced instance type (matches a rate's sku); omitted: the server keeps its own",
    )
    parser.add_argument(
        "--pricing-model",
        choices=PRICING_MODELS,
        default=os.environ.get("FRAMEOPS_PRICING_MODEL") or None,
        help="omitted: the server keeps its own (a new node is on-demand)",
    )
    parser.add_argument(
        "--interconnect",
        choices=(*INTERCONNECTS, "auto"),
        default=os.environ.get("FRAMEOPS_INTERCONNECT", "auto"),
        help="auto: NVLink if NVML sees an active link, else PCIe",
    )
    parser.add_argument(
        "--volume-type",
        action="append",
        type=_volume_type,
        default=[],
        metavar="DEVICE=TYPE",
        help="priced volume type of a storage device, e.g. nvme0n1=gp3 (repeatable)",
    )
    parser.add_argument("--no-gpu", action="store_true", help="storage only (hosts without NVML)")
    parser.add_argument(
        "--send-raw",
        action="store_true",
        help="send every GPU sample (POST /api/v1/ingest/gpu-samples) instead of the minutes "
        "rolled up here (the default: one row per GPU-minute, /api/v1/ingest/gpu-minutes)",
    )
    parser.add_argument(
        "--minute-grace",
        type=float,
        default=10.0,
        help="seconds a minute stays open after its last interval is known",
    )
    parser.add_argument(
        "--memory-pressure-fraction",
        type=float,
        default=0.92,
        help="memory used / total that counts as pressure; keep it equal to the server's "
        "TELEMETRY_MEMORY_PRESSURE_FRACTION",
    )
    parser.add_argument(
        "--raw-ring-mb",
        type=float,
        default=64.0,
        help="raw samples kept on the host while minutes are sent (0: none); the oldest go first",
    )
    parser.add_argument(
        "--replay-raw",
        metavar="SINCE[,UNTIL]",
        help="send the raw ring's samples of this range (ISO 8601 times; UNTIL defaults to "
        "now) to the server as raw samples, then exit",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="stop after this many seconds (0: run until stopped); for a first try",
    )
    args = parser.parse_args(argv)
    if not args.key:
        parser.error("--key (or FRAMEOPS_API_KEY) is required")
    if args.interval <= 0 or args.flush_every < 1:
        parser.error("--interval must be positive and --flush-every at least 1")
    if args.duration < 0:
        parser.error("--duration must be at least 0")
    if args.minute_grace < 0 or not 0.5 <= args.memory_pressure_fraction <= 1:
        parser.error("--minute-grace must be at least 0; --memory-pressure-fraction 0.5 to 1")
    if args.raw_ring_mb < 0:
        parser.error("--raw-ring-mb must be at least 0")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    ring = Path(args.spool) / RING_FOLDER
    if args.replay_raw:
        try:
            since, until = _parse_range(args.replay_raw)
        except (RecordError, ValueError) as exc:
            parser.error(f"--replay-raw: {exc}")
        try:
            counts = raw_replay(ring, server=args.server, key=args.key, since=since, until=until)
        except (PushError, requests.RequestException) as exc:
            log.error("replay stopped: %s", exc)
            return 1
        log.info("replayed %s to %s from %s: %s", since.isoformat(), until.isoformat(), ring,
                 counts)  # fmt: skip
        return 0

    from collectors.storage import StorageSource, storage_devices

    sources: dict[str, SampleSource] = {"storage": StorageSource(hostname=args.hostname)}
    devices: list[Any] = []
    interconnect = None if args.interconnect == "auto" else args.interconnect
    if not args.no_gpu:
        nvml, devices = _nvml_open()
        if nvml is not None:
            sources = {"gpu": nvml, **sources}
            if interconnect is None:
                interconnect = nvml.interconnect()
    try:
        storage = storage_devices()
    except OSError as exc:
        log.warning("storage devices could not be listed: %s", exc)
        storage = []
    log.info("%s", startup_summary(args.server, args.hostname, devices, storage))
    agent = Agent(
        server=args.server,
        key=args.key,
        sources=sources,
        spool=Spool(Path(args.spool), max_bytes=int(args.spool_max_mb * 2**20)),
        registration=node_registration(
            hostname=args.hostname,
            site=args.site,
            provider=args.provider,
            region=args.region,
            instance_type=args.instance_type,
            devices=devices,
            pricing_model=args.pricing_model,
            interconnect=interconnect,
            volume_types=dict(args.volume_type),
            storage=storage,
        ),
        storage_devices=storage_devices,
        minutes=not args.send_raw,
        minute_grace_s=args.minute_grace,
        pressure_fraction=args.memory_pressure_fraction,
        raw_ring=(
            Spool(ring, max_bytes=int(args.raw_ring_mb * 2**20)) if args.raw_ring_mb else None
        ),
    )
    stopping = False
    deadline = time.monotonic() + args.duration if args.duration else None

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.run(
        interval_s=args.interval,
        flush_every=args.flush_every,
        should_stop=lambda: stopping or (deadline is not None and time.monotonic() >= deadline),
    )
    log.info("stopped: %s", agent.stats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
