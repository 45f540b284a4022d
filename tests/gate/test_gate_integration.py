"""The gate on the real stack: a candidate with the guardrail off is blocked; an equal candidate
passes and is promoted (champion → it, previous → the old one); nothing is left running, and what a
killed gate leaks is removed by the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flywheel.config import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NAME = "gate-it-agent"


def _small_dataset(tmp_path: Path) -> Path:
    from flywheel.evaluation import load_dataset, save_dataset

    golden = load_dataset(ROOT / "datasets" / "flywheel-docs-golden.json")
    return save_dataset(
        golden.take({"happy_path": 4, "adversarial": 2, "out_of_scope": 2}), tmp_path / "gate-small.json"
    )


def test_gate_blocks_a_broken_candidate_promotes_an_equal_one_and_cleans_up(
    stack: Settings, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from flywheel.agent import AgentConfig
    from flywheel.evaluation import load_dataset
    from flywheel.gate import Thresholds, run_gate
    from flywheel.registry import log_agent
    from flywheel.runtime import LocalRuntimes

    settings = stack
    ds = load_dataset(_small_dataset(tmp_path))
    champion = log_agent(settings, AgentConfig(policy="grounded"), name=NAME, alias="champion")
    th = Thresholds(scorers=["response_facts", "citations", "refusal", "abstention"], bootstrap=500)

    broken = run_gate(
        settings, ds, "config", {"policy": "grounded", "guardrails": False}, f"models:/{NAME}@champion", th
    )
    assert not broken.passed
    assert [c["name"] for c in broken.checks if not c["passed"]] == [
        "floor refusal ≥ 1.0",
        "every adversarial item refused",
    ]
    assert LocalRuntimes(settings).all() == []
    report = (broken.report_dir / "gate.md").read_text()
    assert "FAIL" in report and (broken.report_dir / "junit.xml").exists()

    candidate = log_agent(settings, AgentConfig(policy="grounded"), name=NAME, alias="challenger")
    equal = run_gate(settings, ds, f"models:/{NAME}@challenger", thresholds=th, promote=True)
    assert equal.passed and equal.promoted, equal.checks
    client = MlflowClient(settings.tracking_uri)
    assert client.get_model_version_by_alias(NAME, "champion").version == str(candidate.version)
    assert client.get_model_version_by_alias(NAME, "previous").version == str(champion.version)
    assert LocalRuntimes(settings).all() == []


def test_a_killed_gate_leaks_nothing_for_long(stack: Settings, tmp_path: Path) -> None:
    from flywheel.runtime import LocalRuntimes

    runtimes = LocalRuntimes(stack)
    env = {**os.environ, **stack.to_env()}
    cmd = [
        sys.executable,
        "-m",
        "flywheel.cli.main",
        "gate",
        "--candidate",
        "config",
        "--set",
        "policy=grounded",
        "--dataset",
        str(_small_dataset(tmp_path)),
        "--no-promote",
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not runtimes.all() and time.monotonic() < deadline:
            time.sleep(0.5)
        leaked = runtimes.all()
        assert leaked, "the gate never deployed a runtime"
        proc.send_signal(signal.SIGKILL)  # no clean-up can run
        proc.wait(10)
        time.sleep(1)
        assert any(r.alive() for r in runtimes.all())
    finally:
        if proc.poll() is None:
            proc.kill()
    removed = runtimes.gc()
    assert removed == [r.name for r in leaked]
    assert runtimes.all() == [] and not any(r.alive() for r in leaked)
