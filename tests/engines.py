"""Real PostgreSQL and Redis servers on free ports for the tests and benches that need them (Debian's
packages, installed by scripts/ensure-postgres.sh and scripts/ensure-redis.sh). Each starter is a
context manager that stops exactly what it started; ``None`` (with the reason) when the engine is
not installed here."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flywheel.stack import free_port


def stop(*procs: subprocess.Popen[Any]) -> None:
    """SIGTERM each process, wait for it, SIGKILL what does not leave within 15 s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()


def wait_http(url: str, proc: subprocess.Popen[Any], timeout: float = 60) -> None:
    """Until ``url``/health answers 200; an error when ``proc`` exits or the time is up."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not start")
        time.sleep(0.2)


@contextmanager
def gateway_replica(config: Path, cwd: Path | None = None) -> Iterator[str]:
    """``python -m flywheel.gateway`` with ``config`` on a free port until /health answers; its URL.
    The shell's FLYWHEEL_GATEWAY_LIMITS_STORAGE is dropped: the file says where limits live."""
    import sys

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "FLYWHEEL_GATEWAY_LIMITS_STORAGE"}
    cmd = ["-m", "flywheel.gateway", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, *cmd], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url, proc)
        yield url
    finally:
        stop(proc)


def limited_gateway_config(upstream: str, calls: int, period: str, storage: str | None) -> dict[str, Any]:
    """A gateway YAML (as a dict): one OpenAI-compatible endpoint at ``upstream`` behind route
    ``chat`` limited to ``calls`` per ``period``, the limit kept in ``storage`` (None: per replica)."""
    return {
        "endpoints": [
            {
                "name": "a",
                "endpoint_type": "llm/v1/chat",
                "model": {
                    "provider": "openai",
                    "name": "model-a",
                    "config": {"openai_api_key": "none", "openai_api_base": upstream + "/v1"},
                },
            }
        ],
        "routes": [
            {
                "name": "chat",
                "destinations": [{"name": "a", "traffic_percentage": 100}],
                "limit": {"calls": calls, "renewal_period": period},
            }
        ],
        "gateway": {"limits_storage": storage} if storage else {},
    }


def pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """initdb refuses to run as root: run the server as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def postgres_missing() -> str | None:
    if not pg_bin("initdb") or not pg_bin("pg_ctl"):
        return "PostgreSQL is not installed (scripts/ensure-postgres.sh installs it as root)"
    if os.geteuid() == 0 and subprocess.run(["id", "postgres"], capture_output=True).returncode:
        return "running as root without a postgres user to run the server as"
    return None


@contextmanager
def postgres_server(databases: tuple[str, ...] = ("mlflow",)) -> Iterator[str]:
    """A PostgreSQL server (user ``mlflow``, trust auth, 127.0.0.1); yields its base URL
    ``postgresql://mlflow@127.0.0.1:PORT`` — append ``/DATABASE``."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    assert initdb and pg_ctl, postgres_missing()
    # not under pytest's temporary folder: it is private to root, and the server runs as postgres
    root = Path(tempfile.mkdtemp(prefix="flywheel-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres([initdb, "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200"
    subprocess.run(
        _as_postgres([pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "pg.log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    try:
        for db in databases:
            subprocess.run(
                _as_postgres(
                    [pg_bin("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", db]
                ),
                check=True,
                capture_output=True,
            )
        yield f"postgresql://mlflow@127.0.0.1:{port}"
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]), capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def redis_missing() -> str | None:
    if not shutil.which("redis-server"):
        return "Redis is not installed (scripts/ensure-redis.sh installs it as root)"
    return None


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis server on 127.0.0.1 without persistence; yields ``redis://127.0.0.1:PORT``."""
    exe = shutil.which("redis-server")
    assert exe, redis_missing()
    port = free_port()
    folder = tempfile.mkdtemp(prefix="flywheel-redis-")
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            folder,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop(proc)
        shutil.rmtree(folder, ignore_errors=True)
