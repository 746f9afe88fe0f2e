"""Run a script in ``manage.py shell`` against a throw-away SQLite file, as the embedded
demo runs (the suite itself uses PostgreSQL); the script's last line printed is JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_on_sqlite(script: str, var_dir: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["FRAMEOPS_VAR_DIR"] = str(var_dir)
    out = subprocess.run(  # noqa: S603
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])
