"""`flywheel tune` shared by several processes through a real PostgreSQL study, on the real stack:
two workers finish a grid without running any trial twice and exactly one registers the choice;
a worker killed with SIGKILL mid-trial has its trial finished by the other, its runtime removed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.config import Settings
from tests.engines import postgres_missing, postgres_server

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def optuna_db() -> Iterator[str]:
    missing = postgres_missing()
    if missing:
        pytest.skip(missing)
    with postgres_server(("optuna",)) as base:
        yield base + "/optuna"


def _spec(tmp_path: Path, name: str) -> Path:
    spec = {
        "search": {"policy": ["grounded"], "top_k": [3, 4, 5, 6]},
        "strategy": "grid",
        "dataset": str(ROOT / "datasets" / "flywheel-docs-golden.json"),
        "per_kind": {"happy_path": 1, "adversarial": 1},
        "register": {"name": name, "alias": "challenger"},
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def _start(settings: Settings, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.to_env(), "FLYWHEEL_TUNE_HEARTBEAT_S": "1"}
    out = open(log, "wb")  # noqa: SIM115 - closed when the process is reaped
    return subprocess.Popen(
        [sys.executable, "-m", "flywheel.cli.main", "tune", *args],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def _wait(procs: list[subprocess.Popen[bytes]], logs: list[Path], timeout: float = 420) -> list[str]:
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(max(1, deadline - time.monotonic()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [log.read_text(errors="replace") for log in logs]


def _summary(url: str, name: str) -> tuple[dict[str, int], list[dict]]:
    from flywheel.tuning._distributed import SharedStudy

    shared = SharedStudy(url, name)
    shared.join(timeout_s=5)
    return shared.summary(), shared.results()


def test_two_workers_share_a_grid_and_one_registers(stack: Settings, optuna_db: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from flywheel.runtime import LocalRuntimes

    name = "tune-dist-agent"
    spec = _spec(tmp_path, name)
    logs = [tmp_path / "coordinator.log", tmp_path / "worker.log"]
    coordinator = _start(stack, ["--config", str(spec), "--storage", optuna_db, "--name", "dist"], logs[0])
    worker = _start(stack, ["--worker", "--storage", optuna_db, "--name", "dist"], logs[1])
    out = _wait([coordinator, worker], logs)
    assert coordinator.returncode == 0 and worker.returncode == 0, out

    summary, results = _summary(optuna_db, "dist")
    assert summary["complete"] == 4 and summary["duplicates"] == 0, summary
    assert {r["key"] for r in results if not r["error"]} == {r["key"] for r in results}
    # both processes ran trials: the work was shared, not done twice
    assert all("→ quality" in text for text in out), out
    # one process wrote the report and registered; the other says it left that to the last one
    assert sum("registered models:/" in text for text in out) == 1, out
    assert sum("worker done" in text for text in out) == 1, out
    client = MlflowClient(stack.tracking_uri)
    versions = client.search_model_versions(f"name = '{name}'")
    assert len(versions) == 1
    assert client.get_model_version_by_alias(name, "challenger").version == versions[0].version
    assert LocalRuntimes(stack).all() == []
    assert all("Traceback" not in text for text in out), out


def test_a_killed_workers_trial_is_finished_by_the_other(
    stack: Settings, optuna_db: str, tmp_path: Path
) -> None:
    from flywheel.runtime import LocalRuntimes

    name = "tune-kill-agent"
    spec = _spec(tmp_path, name)
    runtimes = LocalRuntimes(stack)
    logs = [tmp_path / "coordinator.log", tmp_path / "victim.log"]
    victim = _start(stack, ["--worker", "--storage", optuna_db, "--name", "kill"], logs[1])
    coordinator = _start(stack, ["--config", str(spec), "--storage", optuna_db, "--name", "kill"], logs[0])
    killed_trial = None
    try:
        deadline = time.monotonic() + 240
        while killed_trial is None and time.monotonic() < deadline and victim.poll() is None:
            mine = [r for r in runtimes.all() if r.owner and int(r.owner["pid"]) == victim.pid]
            if mine:
                killed_trial = mine[0].name.split("-")[-2]  # tune-<study>-<trial key[:8]>-<random>
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
            time.sleep(0.2)
        assert killed_trial, "the worker never deployed a trial before the deadline"
    finally:
        if victim.poll() is None:
            victim.kill()
    out = _wait([coordinator], logs[:1])
    assert coordinator.returncode == 0, out

    summary, results = _summary(optuna_db, "kill")
    completed = {r["key"] for r in results if not r["error"]}
    assert len(completed) == 4 and summary["duplicates"] == 0, summary
    assert any(k.startswith(killed_trial) for k in completed)  # the dead worker's trial, finished
    assert summary.get("fail", 0) >= 1  # …after its stale attempt was failed and queued again
    assert "registered models:/" in out[0]
    assert runtimes.all() == []  # the killed worker's runtime was collected
