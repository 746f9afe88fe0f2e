"""Alerts benchmark: one evaluation tick of the default rules over a large fleet against
one SQL scan of the same samples, and the latency from a GPU's first throttled sample to
the firing notice a loopback webhook receives.

* `tick_s`: `rules_evaluate` of every default rule over 4,096 GPUs whose last 15 minutes
  of 1 Hz samples are stored and rolled up (some GPUs throttling); `rollup_s` is the
  minute rollup of those 15 minutes, which the per-minute beat runs before it;
* `scan_s`: one SQL aggregate over the same raw samples (throttled seconds per GPU);
* `detect_latency_s`: 8 GPUs report at 1 Hz in real time, one of them throttled from a
  moment on; the beat's work (rollup, evaluation, notification) runs every minute as it
  does in production, with `for_s` = 60; the time from the first throttled sample to the
  firing notice at an HTTP receiver on loopback.

    .venv/bin/python bench/alerts.py [--gpus 4096] [--minutes 15] [--latency/--no-latency]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _setup import bench_database, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, default=4096)
    parser.add_argument("--minutes", type=int, default=15)
    parser.add_argument("--latency", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    with bench_database("alerts"):
        from django.conf import settings
        from django.db import connection

        from collectors.records import GpuSample
        from finops.alerts.evaluation import rules_evaluate
        from finops.alerts.models import AlertRule, Channel
        from finops.alerts.notify import tick_notify
        from finops.fleet.services import GpuRegistration, node_register
        from finops.telemetry.ingest import gpu_samples_store
        from finops.telemetry.rollups import rollups_recent, rollups_recompute

        t: dict[str, float] = {}
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        start = now - timedelta(minutes=args.minutes)
        nodes = -(-args.gpus // 8)
        print(
            f"registering {args.gpus} GPUs and writing {args.minutes} min of 1 Hz samples:",
            flush=True,
        )
        uuids = []
        for n in range(nodes):
            regs = [GpuRegistration(uuid=f"GPU-{n}-{i}", index=i, model="NVIDIA H100 80GB HBM3")
                    for i in range(8)]  # fmt: skip
            node_register(hostname=f"node-{n:04d}", site="bench", provider="other", gpus=regs)
            uuids += [r.uuid for r in regs]
        with timed("write", t):
            batch = []
            for second in range(args.minutes * 60):
                ts = start + timedelta(seconds=second)
                for k, uuid in enumerate(uuids):
                    throttled = k % 50 == 0  # 2% of GPUs throttle half of every minute
                    batch.append((len(batch) + 1, GpuSample(
                        gpu_uuid=uuid, ts=ts, sm_util_pct=90.0, power_w=600.0,
                        clocks_event_reasons=0x20 if throttled and second % 60 < 30 else 0,
                    )))  # fmt: skip
                if len(batch) >= 200_000:
                    gpu_samples_store(records=batch)
                    batch = []
            if batch:
                gpu_samples_store(records=batch)
        with timed("rollup", t):
            rollups_recompute(start=start, end=now)
        with connection.cursor() as c:
            c.execute("ANALYZE")
        with timed("scan", t), connection.cursor() as c:
            c.execute(
                "SELECT gpu_id, COUNT(*) FILTER (WHERE clocks_event_reasons & 104 <> 0), COUNT(*)"
                " FROM telemetry_gpusample WHERE ts >= %s AND ts < %s GROUP BY gpu_id",
                [now - timedelta(minutes=5), now],
            )
            scanned = c.fetchall()
        print(f"  scan: {len(scanned)} GPUs over the last 5 minutes of samples")
        with timed("tick", t):
            report = rules_evaluate(now=now)
        print(f"  tick: {report.evaluated} observations, {report.pending} pending")
        figures = {
            "bench": "alerts", "gpus": len(uuids), "minutes": args.minutes,
            "samples": len(uuids) * args.minutes * 60,
            "write_s": round(t["write"], 1), "rollup_s": round(t["rollup"], 3),
            "tick_s": round(t["tick"], 3), "scan_s": round(t["scan"], 3),
            "ratio_vs_scan": round(t["tick"] / t["scan"], 3),
        }  # fmt: skip
        if args.latency:
            figures["detect_latency_s"] = latency(settings, AlertRule, Channel, node_register,
                                                  GpuRegistration, GpuSample, gpu_samples_store,
                                                  rollups_recent, rules_evaluate, tick_notify)  # fmt: skip
        print(json.dumps(figures))


def latency(settings, AlertRule, Channel, node_register, GpuRegistration, GpuSample,  # type: ignore[no-untyped-def]
            gpu_samples_store, rollups_recent, rules_evaluate, tick_notify) -> float:  # fmt: skip
    received: list[float] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            gpus = {a["labels"].get("gpu") for a in body.get("alerts", [])}
            if body.get("status") == "firing" and "GPU-live-0" in gpus:
                received.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.ALERT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    from finops.alerts.models import Alert

    Alert.objects.all().delete()  # the large fleet's alerts are not this measurement's
    rule = AlertRule.objects.get(name="Thermal throttling")
    AlertRule.objects.exclude(pk=rule.pk).update(enabled=False)
    rule.for_s = 60
    rule.save()
    rule.channels.add(Channel.objects.create(name="bench", kind="webhook",
                                             target=f"http://127.0.0.1:{server.server_address[1]}/"))  # fmt: skip
    regs = [
        GpuRegistration(uuid=f"GPU-live-{i}", index=i, model="NVIDIA H100 80GB HBM3")
        for i in range(8)
    ]
    node_register(hostname="live-1", site="bench", provider="other", gpus=regs)
    print("latency: 8 GPUs at 1 Hz in real time, GPU 0 throttled from 20 s on; the beat's "
          "work every minute", flush=True)  # fmt: skip
    began = time.monotonic()
    throttled_from = began + 20
    next_tick = began + 60 - datetime.now(UTC).second + 2  # two seconds after each minute
    try:
        while time.monotonic() - began < 420 and not received:
            now = datetime.now(UTC)
            hot = time.monotonic() >= throttled_from
            gpu_samples_store(records=[(i + 1, GpuSample(
                gpu_uuid=r.uuid, ts=now, sm_util_pct=90.0,
                clocks_event_reasons=0x20 if hot and i == 0 else 0)) for i, r in enumerate(regs)])  # fmt: skip
            if time.monotonic() >= next_tick:
                rollups_recent()
                report = rules_evaluate()
                tick_notify(fired=report.fired or [], resolved=report.resolved or [])
                next_tick += 60
            time.sleep(max(0.0, 1 - (time.monotonic() - began) % 1))
    finally:
        server.shutdown()
    if not received:
        print("  no firing notice within 7 minutes")
        return -1.0
    return round(received[0] - throttled_from, 1)


if __name__ == "__main__":
    main()
