"""Load benchmark: the production stack on loopback, measured with wrk.

FrameOps under gunicorn (deploy/gunicorn.conf.py: sync workers, (2 x cores) + 1) with
DEBUG=0 against a throw-away PostgreSQL database holding the attribution benchmark's month
(512 GPUs, 1,000,000 jobs, 50 teams, its ledger), driven by wrk (Debian's package,
installed when missing) for a bounded time per target:

- ``GET /api/v1/allocation`` over the month's last 7 days by team, with a billing key;
- the overview page over the same 7 days, signed in as an admin (every team: the largest);
- ``POST /api/v1/ingest/gpu-samples`` with 1,000-sample NDJSON batches, every batch new
  samples (no duplicates), for 64 GPUs registered for it, each batch 8 of them as one
  host's agent sends its GPUs.

The baseline, measured in the same run: ``GET /health/`` (one query: the server's floor).
Each target prints req/s, p50 and p99 and its ratio to the baseline's req/s; non-2xx
responses are counted by wrk's Lua hooks (a redirect counts: a signed-out page is not a
success). For ingest, rows stored are counted in the database and compared with rows sent:
1,000 for every batch gunicorn's access log shows it received. The API throttles are raised
for the run (printed). Targets: allocation >= 200 req/s with p99 < 500 ms; overview >= 50
req/s with p99 < 1,000 ms; ingest >= 50,000 samples/s with p99 < 1,000 ms; 0 non-2xx;
rows stored = rows sent. The last line is one JSON object.

    .venv/bin/python bench/load.py [--jobs 1000000] [--gpus 512] [--teams 50] [--days 30]
        [--duration 20] [--connections 16]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _month import month_arguments, month_build, month_ledger
from _setup import ROOT, bench_database, timed

THROTTLES = {"API_THROTTLE_BURST": "10000000/min", "API_THROTTLE_SUSTAINED": "100000000/day"}
BATCH = 1000
INGEST_GPUS = 64

# wrk's Lua: count every response that is not a 2xx (per thread, summed in done()), and
# print the counts as one line the benchmark reads.
LUA_COUNTING = """
function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else bad = bad + 1 end
end
function done(summary, latency, requests)
  local b, o = 0, 0
  for _, t in ipairs(threads) do b = b + t:get("bad"); o = o + t:get("ok") end
  io.write(string.format("COUNTS ok=%d bad=%d\\n", o, b))
end
"""
LUA_COUNT = (
    """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0; ok = 0 end
"""
    + LUA_COUNTING
)

# Ingest bodies: each request carries 1,000 new samples, 125 seconds of 8 GPUs, at times
# no other request uses for them (the thread's index and its request number decide which).
LUA_INGEST = (
    """
local threads = {}
local next_index = 0
function setup(thread)
  thread:set("thread_index", next_index)
  next_index = next_index + 1
  table.insert(threads, thread)
end
function init(args) bad = 0; ok = 0; counter = 0 end
function request()
  -- The k-th batch of the run: 8 GPUs of block k % 8 (64 in all, as 8 hosts' agents send
  -- them), 125 seconds of window k // 8: no (GPU, second) is sent twice.
  local k = counter * THREADS + thread_index
  local block = k % 8
  local first = BASE + math.floor(k / 8) * 125
  counter = counter + 1
  local lines = {}
  for s = 0, 124 do
    local ts = os.date("!%Y-%m-%dT%H:%M:%SZ", first + s)
    for g = 0, 7 do
      lines[#lines + 1] = string.format(
        '{"gpu_uuid":"GPU-LOAD-%d","ts":"%s","sm_util_pct":%d,"mem_used_bytes":%d,' ..
        '"mem_total_bytes":85520809984,"power_w":%d.5,"power_limit_w":700.0,"temp_c":65,' ..
        '"sm_clock_mhz":1755,"sm_clock_max_mhz":1980,"clocks_event_reasons":0,' ..
        '"energy_mj":%d}', block * 8 + g, ts, (s * 7 + g) % 100, 60000000000 + s, 400 + g,
        (first + s) * 1000)
    end
  end
  return wrk.format("POST", nil, nil, table.concat(lines, "\\n"))
end
"""
    + LUA_COUNTING
)


def _wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: installing Debian's package", flush=True)
    if os.geteuid() != 0:
        sys.exit("bench/load.py: install wrk (sudo apt-get install wrk)")
    subprocess.run(["apt-get", "update", "-qq"], check=True)  # noqa: S607
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,  # noqa: S607
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    return shutil.which("wrk") or sys.exit("bench/load.py: wrk did not install")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _run_wrk(wrk: str, url: str, *, script: str, duration_s: int, connections: int,
             headers: dict[str, str]) -> dict[str, float]:  # fmt: skip
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        args = [wrk, "--latency", "-t2", f"-c{connections}", f"-d{duration_s}s", "--timeout", "10s",
                "-s", f.name]  # fmt: skip
        for name, value in headers.items():
            args += ["-H", f"{name}: {value}"]
        out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout  # noqa: S603
    finally:
        os.unlink(f.name)
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.MULTILINE))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    counts = re.search(r"COUNTS ok=(\d+) bad=(\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)

    def parse(text: str) -> float:
        number, unit = re.match(r"([\d.]+)(\w+)", text).groups()  # type: ignore[union-attr]
        return _ms(number, unit)

    result = {
        "rps": rps,
        "p50_ms": parse(latency["50"]),
        "p99_ms": parse(latency["99"]),
        "ok": int(counts.group(1)) if counts else 0,
        "non_2xx": int(counts.group(2)) if counts else -1,
    }
    if socket_errors:
        print(f"    wrk socket errors: {socket_errors.group(1)}")
        result["non_2xx"] += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return result


def _gunicorn_env(url: str, static_root: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "METRICS_TOKEN": secrets.token_urlsafe(24),
        "STATIC_ROOT": static_root,
        # Plain HTTP on loopback: no TLS redirect, cookies not marked secure-only.
        "SECURE_SSL_REDIRECT": "0",
        "SESSION_COOKIE_SECURE": "0",
        "CSRF_COOKIE_SECURE": "0",
        "SECURE_HSTS_SECONDS": "0",
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15"),
        "LOG_LEVEL": "WARNING",
        **THROTTLES,
    }


def _sign_in(base: str, username: str, password: str) -> str:
    """A session cookie from the sign-in form, as a browser gets it."""
    import requests

    session = requests.Session()
    form = session.get(f"{base}/login/", timeout=30)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
    done = session.post(f"{base}/login/", data={"username": username, "password": password,
                        "csrfmiddlewaretoken": token}, allow_redirects=False, timeout=30)  # fmt: skip
    assert done.status_code == 302, (done.status_code, done.text[:300])
    return f"sessionid={session.cookies['sessionid']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    month_arguments(parser)
    parser.add_argument("--telemetry-days", type=int, default=1)
    parser.add_argument("--duration", type=int, default=20, help="seconds of wrk per target")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of one request of each target first")  # fmt: skip
    args = parser.parse_args()
    wrk = _wrk()
    # The bench process issues the keys and the server checks them: one pair of secrets.
    os.environ["SECRET_KEY"] = secrets.token_urlsafe(48)
    os.environ["API_KEY_SECRET"] = secrets.token_urlsafe(48)

    with bench_database("load") as url:
        from django.contrib.auth import get_user_model

        from finops.accounts.services import api_key_create
        from finops.telemetry.models import GpuSample

        t: dict[str, float] = {}
        month = month_build(
            jobs=args.jobs, gpus=args.gpus, teams=args.teams, days=args.days,
            telemetry_days=args.telemetry_days, t=t, clips=True,
        )  # fmt: skip
        month_ledger(month, workers=args.workers, t=t)
        # A server in steady state: the month's tables vacuumed and analysed, not with
        # autovacuum working through a million fresh rows during the measurement.
        with timed("vacuum analyze", t):
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("VACUUM (ANALYZE)")
                # And written out: no checkpoint of the month's pages during the measurement.
                cursor.execute("CHECKPOINT")
        password = secrets.token_urlsafe(16)
        get_user_model().objects.create_superuser("load", "load@example.com", password)
        _, billing_key = api_key_create(name="load billing", scopes=["billing:read"])
        _, ingest_key = api_key_create(name="load agents", scopes=["ingest:write"])
        week = f"{(month.end - timedelta(days=7)).isoformat()},{month.end.isoformat()}"
        week_q = week.replace("+00:00", "Z")
        if args.profile:
            _profile(week, billing_key)

        static_root = tempfile.mkdtemp(prefix="frameops-static-")
        env = _gunicorn_env(url, static_root)
        subprocess.run([sys.executable, "manage.py", "collectstatic", "--no-input", "-v0"],
                       cwd=ROOT, env=env, check=True)  # fmt: skip
        check = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT,
                               env=env, capture_output=True, text=True, check=False)  # fmt: skip
        print("manage.py check --deploy (plain HTTP on loopback: the TLS warnings are expected):")
        print("  " + (check.stdout + check.stderr).strip().replace("\n", "\n  "))
        access_log = Path(tempfile.mkdtemp(prefix="frameops-load-")) / "access.log"
        port = 18000 + os.getpid() % 1000
        base = f"http://127.0.0.1:{port}"
        gunicorn = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind",
             f"127.0.0.1:{port}", "--access-logfile", str(access_log), "--access-logformat",
             '%(h)s "%(r)s" %(s)s %(M)s', "finops.wsgi:application"],
            cwd=ROOT, env=env,
        )  # fmt: skip
        try:
            import requests

            for _ in range(100):
                try:
                    if requests.get(f"{base}/health/", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    time.sleep(0.3)
            workers = 2 * (os.cpu_count() or 1) + 1
            print(f"gunicorn: {workers} sync workers on {base}; throttles raised: {THROTTLES}")
            node = {"hostname": "load-1", "site": "load", "provider": "on-prem",
                    "gpus": [{"uuid": f"GPU-LOAD-{i}", "index": i, "model": "NVIDIA H100 80GB HBM3",
                              "mem_total_bytes": 85520809984} for i in range(INGEST_GPUS)]}  # fmt: skip
            registered = requests.post(f"{base}/api/v1/nodes", json=node, timeout=30,
                                       headers={"Authorization": f"Bearer {ingest_key}"})  # fmt: skip
            assert registered.status_code in (200, 201), registered.text
            cookie = _sign_in(base, "load", password)

            runs: dict[str, dict[str, float]] = {}
            targets = {
                "health": ("/health/", {}, LUA_COUNT),
                "allocation": (f"/api/v1/allocation?window={week_q}&aggregate=team",
                               {"Authorization": f"Bearer {billing_key}"}, LUA_COUNT),
                "overview": (f"/?window={week_q}", {"Cookie": cookie}, LUA_COUNT),
            }  # fmt: skip
            for name, (path, headers, script) in targets.items():
                requests.get(base + path, headers=headers, timeout=60)  # warm the workers
                runs[name] = _run_wrk(wrk, base + path, script=script, duration_s=args.duration,
                                      connections=args.connections, headers=headers)  # fmt: skip
                r = runs[name]
                print(f"  {name}: {r['rps']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, "
                      f"p99 {r['p99_ms']:.1f} ms, non-2xx {r['non_2xx']}", flush=True)  # fmt: skip
                _drain(access_log)

            before = GpuSample.objects.count()
            checkpoints_before = _checkpoints()
            base_ts = int((datetime.now(UTC) - timedelta(days=5)).timestamp())
            ingest_headers = {"Authorization": f"Bearer {ingest_key}",
                              "Content-Type": "application/x-ndjson"}  # fmt: skip
            lua = LUA_INGEST.replace("BASE", str(base_ts)).replace("THREADS", "2")
            received_before = _ingest_requests(access_log)
            runs["ingest"] = r = _run_wrk(wrk, base + "/api/v1/ingest/gpu-samples", script=lua,
                                          duration_s=args.duration,
                                          connections=max(2, args.connections // 4),
                                          headers=ingest_headers)  # fmt: skip
            time.sleep(3)  # requests in flight when wrk stopped finish
            received = _ingest_requests(access_log) - received_before
            stored = GpuSample.objects.count() - before
            checkpoints = _checkpoints() - checkpoints_before
            server_ms = _server_ms(access_log, '"POST /api/v1/ingest/gpu-samples')
            print(f"    ingest time inside gunicorn (its access log): p50 "
                  f"{_quantile(server_ms, 0.5):.0f} ms, p99 {_quantile(server_ms, 0.99):.0f} ms, "
                  f"max {max(server_ms, default=0):.0f} ms; autovacuum and autoanalyze of the "
                  f"sample table during the run: {_autovacuums('telemetry_gpusample')}")  # fmt: skip
            sent = received * BATCH
            print(f"  ingest: {r['rps'] * BATCH:,.0f} samples/s ({r['rps']:.1f} batches/s), "
                  f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, non-2xx {r['non_2xx']}; "
                  f"rows sent {sent:,}, stored {stored:,}; PostgreSQL checkpoints during it: "
                  f"{checkpoints}", flush=True)  # fmt: skip
        finally:
            gunicorn.terminate()
            gunicorn.wait(timeout=30)
            shutil.rmtree(static_root, ignore_errors=True)
            shutil.rmtree(access_log.parent, ignore_errors=True)

        health = runs["health"]["rps"]
        figures = {
            "bench": "load",
            "jobs": month.jobs,
            "gpus": len(month.gpu_ids),
            "teams": args.teams,
            "gunicorn_workers": workers,
            "wrk_duration_s": args.duration,
            "wrk_connections": args.connections,
            "health_rps": round(health, 1),
            "allocation_rps": round(runs["allocation"]["rps"], 1),
            "allocation_p99_ms": round(runs["allocation"]["p99_ms"], 1),
            "overview_rps": round(runs["overview"]["rps"], 1),
            "overview_p99_ms": round(runs["overview"]["p99_ms"], 1),
            "ingest_samples_per_s": round(runs["ingest"]["rps"] * BATCH),
            "ingest_p99_ms": round(runs["ingest"]["p99_ms"], 1),
            "non_2xx": int(sum(run["non_2xx"] for run in runs.values())),
            "ingest_rows_sent": sent,
            "ingest_rows_stored": stored,
            "allocation_vs_health": round(runs["allocation"]["rps"] / health, 3),
            "overview_vs_health": round(runs["overview"]["rps"] / health, 3),
            "ingest_vs_health": round(runs["ingest"]["rps"] / health, 3),
        }
        met = {
            "allocation": figures["allocation_rps"] >= 200 and figures["allocation_p99_ms"] < 500,
            "overview": figures["overview_rps"] >= 50 and figures["overview_p99_ms"] < 1000,
            "ingest": figures["ingest_samples_per_s"] >= 50_000 and figures["ingest_p99_ms"] < 1000,
            "no_errors": figures["non_2xx"] == 0,
            "nothing_lost": sent == stored,
        }
        print("targets: " + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items()))
        print(json.dumps(figures))


def _profile(week: str, billing_key: str) -> None:
    """cProfile of one request of the allocation and overview targets, in this process."""
    import cProfile
    import pstats

    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(get_user_model().objects.get(username="load"))
    requests = {
        "allocation": ("/api/v1/allocation", {"window": week, "aggregate": "team"},
                       {"HTTP_AUTHORIZATION": f"Bearer {billing_key}"}),
        "overview": ("/", {"window": week}, {}),
    }  # fmt: skip
    for name, (path, params, headers) in requests.items():
        client.get(path, params, **headers)  # warm
        profiler = cProfile.Profile()
        response = profiler.runcall(client.get, path, params, **headers)
        assert response.status_code == 200, response.content[:300]
        print(f"--- profile of one {name} request ---")
        pstats.Stats(profiler, stream=sys.stdout).sort_stats("cumulative").print_stats(25)


def _drain(access_log: Path) -> None:
    """Wait for the requests wrk left queued when it stopped (up to its connections'
    worth) to finish, so the next target does not wait behind them."""
    seen = -1
    while True:
        count = len(access_log.read_text().splitlines()) if access_log.exists() else 0
        if count == seen:
            return
        seen = count
        time.sleep(1.0)


def _server_ms(access_log: Path, request: str) -> list[float]:
    """Milliseconds each request of ``request`` spent in gunicorn (its access log, %(M)s)."""
    return [float(line.rsplit(" ", 1)[1]) for line in access_log.read_text().splitlines()
            if request in line and line.rsplit(" ", 1)[1].isdigit()]  # fmt: skip


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _autovacuums(table: str) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT autovacuum_count + autoanalyze_count FROM pg_stat_user_tables "
                       "WHERE relname = %s", [table])  # fmt: skip
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _checkpoints() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
        return int(cursor.fetchone()[0])


def _ingest_requests(access_log: Path) -> int:
    """Ingest batches gunicorn received in full and answered 200 (its access log)."""
    if not access_log.exists():
        return 0
    return sum(
        1
        for line in access_log.read_text().splitlines()
        if '"POST /api/v1/ingest/gpu-samples' in line and '" 200 ' in line
    )


if __name__ == "__main__":
    main()
