"""A private PostgreSQL cluster for fault tests: initdb and pg_ctl from Debian's server
package, on a free loopback port, owned by the ``postgres`` user (PostgreSQL refuses to
run as root). Restarting it disturbs nothing else on the machine."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.gunicorn_server import free_port


def _bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None
    )
    if found is None:
        raise RuntimeError(f"{name} is needed: Debian's postgresql package provides it")
    return found


class Cluster:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.data = directory / "data"

    @property
    def url(self) -> str:
        return f"postgres://root@127.0.0.1:{self.port}/frameops"

    def _as_postgres(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603

    def _ctl(self, *args: str) -> None:
        done = self._as_postgres(_bin("pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(args)}: {done.stdout}{done.stderr}")

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        done = self._as_postgres(_bin("initdb"), "-D", str(self.data), "-U", "root",
                                 "-A", "trust", "-E", "UTF8", "--no-sync")  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"initdb: {done.stdout}{done.stderr}")

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
                   "-c fsync=off -c jit=off")  # fmt: skip
        self._ctl("-l", str(self.directory / "log"), "-o", options, "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    # Under /tmp, not pytest's root-only folder: the postgres user must reach it.
    directory = Path(tempfile.mkdtemp(prefix="frameops-pg-"))
    cluster = Cluster(directory, free_port())
    cluster.init()
    cluster.start()
    try:
        import psycopg

        with psycopg.connect(
            f"postgres://root@127.0.0.1:{cluster.port}/postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE frameops")
        yield cluster
    finally:
        with suppress(RuntimeError):
            cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)
