"""Faults around the host agent, on real parts: an hour of spool replayed after an outage
in which a GPU died (staleness follows sample time), and a spool disk that fills up (a
real tmpfs of 64 KiB)."""

from __future__ import annotations

import errno
import math
import os
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from collectors.agent import Agent, Spool, node_registration
from collectors.nvml import NvmlSource
from finops.accounts.services import api_key_create
from finops.alerts.defaults import DEFAULT_RULES
from finops.alerts.evaluation import rules_evaluate
from finops.alerts.models import Alert, AlertRule, AlertState
from finops.fleet.models import Gpu
from finops.telemetry.models import GpuSample
from tests.collectors.fake_pynvml import FakeNvml

L4 = 1  # index of the L4 in the fake NVML


def _agent(url: str, spool_dir, fake: FakeNvml, *, max_bytes: int = 2**30,  # type: ignore[no-untyped-def]
           hostname: str = "gpu-a1", **options) -> Agent:  # fmt: skip
    _, key = api_key_create(name=f"agent {hostname}", scopes=["ingest:write"])
    nvml = NvmlSource(fake)
    devices = nvml.open()
    return Agent(server=url, key=key, sources={"gpu": nvml},
                 spool=Spool(spool_dir, max_bytes=max_bytes),
                 registration=node_registration(hostname=hostname, site="lab", provider="on-prem",
                                                region="", instance_type="", devices=devices),
                 timeout_s=2, **options)  # fmt: skip


def _raw_and_minutes_agents(url: str, tmp_path) -> tuple[Agent, Agent, FakeNvml, FakeNvml]:  # type: ignore[no-untyped-def]
    """Two hosts with the same GPUs under other UUIDs: one agent sends raw samples, the
    other the minutes it rolls up."""
    raw_fake, edge_fake = FakeNvml(), FakeNvml()
    for i, gpu in enumerate(edge_fake.gpus):
        gpu["uuid"] = f"GPU-edge-{i}"
    for slot in edge_fake.migs.values():
        slot["uuid"] = slot["uuid"].replace("MIG-", "MIG-edge-")
    raw = _agent(url, tmp_path / "raw", raw_fake)
    edge = _agent(url, tmp_path / "edge", edge_fake, hostname="gpu-e1", minutes=True)
    return raw, edge, raw_fake, edge_fake


@pytest.mark.django_db(transaction=True)
def test_a_replayed_hour_leaves_the_gpu_that_died_stale_and_it_alerts_once(server, tmp_path):
    # The default rule, as the migrations seed it (a transactional test before may have
    # flushed it).
    (stale_rule,) = [dict(r) for r in DEFAULT_RULES if r["kind"] == "telemetry_stale"]
    AlertRule.objects.update_or_create(name=stale_rule.pop("name"), defaults=stale_rule)
    fake = FakeNvml()
    agent = _agent(server.url, tmp_path / "spool", fake)
    now = timezone.now().replace(microsecond=0)
    outage_start = now - timedelta(hours=1)
    agent.flush()  # registers the node: an hour and two minutes ago, in this story
    Gpu.objects.update(last_seen_at=outage_start - timedelta(minutes=2))
    # Before the outage: a minute of data from every device reaches the server.
    for second in range(0, 60, 10):
        agent.poll(now=outage_start - timedelta(seconds=60 - second))
    agent.flush()
    assert agent.stats.accepted == 6 * 4
    # The outage: an hour spooled; the L4 dies ten minutes in.
    server.stop()
    for second in range(0, 3600, 10):
        if second == 600:
            fake.lost.add(L4)
        agent.poll(now=outage_start + timedelta(seconds=second))
        if second % 300 == 290:
            agent.flush()
    assert agent.stats.spooled_batches == 12 and agent.stats.accepted == 24
    # The server is back: the hour is replayed, every sample stored once.
    server.start()
    agent.flush()
    assert len(agent.spool) == 0 and agent.stats.replayed_batches == 12
    l4_samples = 6 + 60  # before the outage, and its first ten minutes
    assert GpuSample.objects.filter(gpu__uuid="GPU-l4").count() == l4_samples
    assert GpuSample.objects.filter(gpu__uuid="GPU-h100").count() == 6 + 360

    # Last seen is the newest sample's time, not when it arrived.
    seen = dict(Gpu.objects.values_list("uuid", "last_seen_at"))
    assert seen["GPU-l4"] == outage_start + timedelta(seconds=590)
    assert seen["GPU-h100"] == outage_start + timedelta(seconds=3590)
    for minute in (0, 1, 2):  # evaluated again and again, it fires once
        rules_evaluate(now=now + timedelta(minutes=minute))
    alerts = Alert.objects.filter(rule__kind="telemetry_stale")
    assert [(a.dedup_key, a.state) for a in alerts] == [("GPU-l4", AlertState.FIRING)]
    assert alerts.get().value >= 3000


def _tmpfs(path) -> None:  # type: ignore[no-untyped-def]
    path.mkdir()
    mounted = subprocess.run(  # noqa: S603
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path)],  # noqa: S607
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.fail(f"a 64 KiB tmpfs is needed (root): {mounted.stderr.strip()}")


@pytest.mark.django_db(transaction=True)
def test_a_full_spool_disk_keeps_the_newest_batches_and_logs_the_drops(server, tmp_path, caplog):
    spool_dir = tmp_path / "spool"
    _tmpfs(spool_dir)
    try:
        fake = FakeNvml()
        fake.gpus[0]["name"] = "NVIDIA H100 80GB HBM3 " + "x" * 40  # bigger batches
        agent = _agent(server.url, spool_dir, fake)  # the byte bound is far above the disk
        agent.flush()  # registers the node
        server.stop()
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        polls_per_batch, batches = 5, 40
        for batch in range(batches):
            for poll in range(polls_per_batch):
                agent.poll(now=t0 + timedelta(seconds=batch * polls_per_batch + poll))
            agent.flush()
        # The disk filled: the oldest batches made room, counted and logged; no crash.
        stats = agent.stats
        assert stats.dropped_batches > 0
        assert stats.spooled_batches == batches
        assert stats.dropped_samples == stats.dropped_batches * polls_per_batch * 4
        assert len(agent.spool) == batches - stats.dropped_batches
        dropped = [r.getMessage() for r in caplog.records if "spool full" in r.getMessage()]
        assert dropped and "samples" in dropped[-1] and "dropped since start" in dropped[-1]
        with pytest.raises(OSError, match="No space left on device") as full:
            (spool_dir / "filler").write_bytes(os.urandom(64 * 1024))  # the disk is full
        assert full.value.errno == errno.ENOSPC
        (spool_dir / "filler").unlink(missing_ok=True)
        # Back online: what was kept arrives, the newest second included.
        server.start()
        agent.flush()
        kept = batches - stats.dropped_batches
        assert GpuSample.objects.count() == kept * polls_per_batch * 4
        newest = t0 + timedelta(seconds=batches * polls_per_batch - 1)
        assert GpuSample.objects.filter(ts=newest).count() == 4
        assert not GpuSample.objects.filter(ts=t0).exists()
    finally:
        subprocess.run(["umount", str(spool_dir)], check=False)  # noqa: S603, S607


@pytest.mark.django_db(transaction=True)
def test_an_agent_in_minutes_mode_sends_the_minutes_the_server_would_make(
    server, tmp_path, settings
):
    """One agent sends its samples raw, another (the same GPUs renamed) sends minutes it
    rolled up: the server ends up with the same minutes and hours, and no raw samples of
    the second."""
    from datetime import timedelta as td

    from finops.telemetry.models import GpuHour, GpuMinute
    from finops.telemetry.rollups import rollups_recompute

    t0 = timezone.now().replace(second=0, microsecond=0) - td(minutes=30)
    raw, edge, *_ = _raw_and_minutes_agents(server.url, tmp_path)
    for second in range(0, 300, 3):
        for agent in (raw, edge):
            agent.poll(now=t0 + td(seconds=second))
        if second % 30 == 27:
            raw.flush()
            edge.flush()
    raw.flush()
    edge.flush()
    assert edge.stats.rejected == 0 and edge.stats.accepted > 0, edge.stats.errors
    assert not GpuSample.objects.filter(gpu__uuid__contains="edge").exists()
    closed = edge._sent_until["GPU-edge-0"]
    rollups_recompute(start=t0, end=closed)
    fields = ("samples", "covered_s", "busy_s", "util_mean_pct", "mem_frac_mean", "power_mean_w",
              "energy_j", "throttle_power_cap_s", "clock_ratio_mean", "pcie_tx_bytes")  # fmt: skip

    def minutes(uuid: str):  # type: ignore[no-untyped-def]
        return list(GpuMinute.objects.filter(gpu__uuid=uuid, ts__lt=closed).order_by("ts")
                    .values_list("ts", *fields))  # fmt: skip

    def close(a, b) -> bool:  # type: ignore[no-untyped-def]
        if a is None or b is None or isinstance(a, datetime):
            return a == b
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)

    for raw_uuid, edge_uuid in (("GPU-h100", "GPU-edge-0"), ("GPU-l4", "GPU-edge-1"),
                                ("MIG-aaaa", "MIG-edge-aaaa")):  # fmt: skip
        ours, theirs = minutes(edge_uuid), minutes(raw_uuid)
        assert len(ours) == len(theirs) > 0, edge_uuid
        for row_a, row_b in zip(ours, theirs, strict=True):
            assert all(close(a, b) for a, b in zip(row_a, row_b, strict=True)), (row_a, row_b)
    assert GpuMinute.objects.filter(gpu__uuid="GPU-edge-0", from_edge=True).exists()
    assert GpuHour.objects.filter(gpu__uuid="GPU-edge-0").exists()


@pytest.mark.django_db(transaction=True)
def test_a_late_sample_makes_the_agent_send_its_minutes_again(server, tmp_path, settings):
    """A reading that comes after its minute was sent (a gap filled late): the agent sends
    the minutes it changes again, and the server ends with the minutes a raw agent's
    samples give. One far older than the agent keeps is dropped and counted."""
    from datetime import timedelta as td

    from finops.telemetry.models import GpuMinute
    from finops.telemetry.rollups import rollups_recompute

    t0 = timezone.now().replace(second=0, microsecond=0) - td(minutes=40)
    raw, edge, raw_fake, edge_fake = _raw_and_minutes_agents(server.url, tmp_path)
    # Every 10 s for 6 minutes, but nothing from 120 s to 170 s: a gap.
    seconds = [s for s in range(0, 360, 10) if not 120 <= s < 180]
    for second in seconds:
        for agent in (raw, edge):
            agent.poll(now=t0 + td(seconds=second))
    for agent in (raw, edge):
        agent.flush()
    sent_before = edge.stats.accepted
    assert edge._sent_until["GPU-edge-0"] >= t0 + td(minutes=4)
    # The gap's readings arrive late, hotter than the rest.
    raw_fake.gpus[0]["util"] = edge_fake.gpus[0]["util"] = 13
    for second in range(120, 180, 10):
        for agent in (raw, edge):
            agent.poll(now=t0 + td(seconds=second))
    for agent in (raw, edge):
        agent.flush()
    assert edge.stats.accepted > sent_before  # minutes sent again
    rollups_recompute(start=t0, end=edge._sent_until["GPU-edge-0"])

    def minutes(uuid: str):  # type: ignore[no-untyped-def]
        return list(GpuMinute.objects.filter(gpu__uuid=uuid, ts__lt=edge._sent_until["GPU-edge-0"])
                    .order_by("ts").values_list("ts", "samples", "covered_s", "util_mean_pct"))  # fmt: skip

    ours, theirs = minutes("GPU-edge-0"), minutes("GPU-h100")
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs, strict=True):
        assert a[:3] == b[:3] and math.isclose(a[3], b[3], rel_tol=1e-9), (a, b)
    assert any(row[3] < 80 for row in ours)  # the late, cooler readings are in
    # A reading older than the samples the agent keeps is dropped, and counted.
    edge.late_window_s = 0
    for second in range(360, 600, 10):
        edge.poll(now=t0 + td(seconds=second))
    edge.flush()
    edge.poll(now=t0 + td(seconds=5))
    assert edge.stats.late_dropped == 4  # each device's reading


@pytest.mark.django_db(transaction=True)
def test_the_raw_ring_keeps_samples_for_replay_within_its_bound(server, tmp_path):
    """A minutes agent keeps its raw samples in a bounded ring; a replayed range reaches the
    server as raw samples, once however often it is replayed, and leaves the minutes the
    agent sent as they were."""
    from collectors.agent import raw_replay
    from finops.telemetry.models import GpuMinute

    t0 = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=30)
    ring = Spool(tmp_path / "edge" / "raw-ring", max_bytes=2**30)
    edge = _agent(server.url, tmp_path / "edge", FakeNvml(), minutes=True, raw_ring=ring)
    for second in range(0, 300, 3):
        edge.poll(now=t0 + timedelta(seconds=second))
        if second % 30 == 27:
            edge.flush()
    edge.flush()
    assert not GpuSample.objects.exists()  # minutes only went to the server
    assert len(ring) == 10
    sent = {m.pk: (m.ts, m.covered_s, m.util_mean_pct) for m in GpuMinute.objects.all()}
    assert sent

    _, key = api_key_create(name="replay", scopes=["ingest:write"])
    since, until = t0 + timedelta(minutes=1), t0 + timedelta(minutes=2)
    first = raw_replay(ring.directory, server=server.url, key=key, since=since, until=until)
    gpus = 4  # the devices the fake NVML samples (its GPUs and MIG instances)
    assert first["sent"] == first["accepted"] == gpus * 20 and first["rejected"] == 0
    stored = GpuSample.objects.all()
    assert stored.count() == gpus * 20
    assert min(s.ts for s in stored) == since and max(s.ts for s in stored) < until
    again = raw_replay(ring.directory, server=server.url, key=key, since=since, until=until)
    assert (again["accepted"], again["duplicate"]) == (0, gpus * 20)
    assert {m.pk: (m.ts, m.covered_s, m.util_mean_pct) for m in GpuMinute.objects.all()} == sent

    # A ring of 4 KiB keeps the newest flushes only.
    small = Spool(tmp_path / "small", max_bytes=4096)
    edge.raw_ring = small
    for second in range(300, 600, 3):
        edge.poll(now=t0 + timedelta(seconds=second))
        if second % 30 == 27:
            edge.flush()
    assert 1 <= len(small) < 10
    assert (
        sum(p.stat().st_size for p in small.directory.glob("*.ndjson.gz")) <= 4096
        or len(small) == 1
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [("yesterday", "--replay-raw: ts"), ("2026-11-02T10:00:00Z,2026-11-02T09:00:00Z", "before")],
)
def test_replay_raw_names_a_bad_range(capsys, tmp_path, text, message):
    from collectors.agent import main

    with pytest.raises(SystemExit) as exit_:
        main(["--server", "http://127.0.0.1:9", "--key", "k", "--spool", str(tmp_path),
              "--replay-raw", text])  # fmt: skip
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
