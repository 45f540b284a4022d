"""`flywheel tune` on the real stack: 2 models × 2 prompts × 2 policies, a kill -9 in the middle,
a resumed run that removes the leaked runtime, finishes, and registers the best as `challenger`;
then a gate on it. A planted secret appears in no log, trace, report or MLflow artifact."""

from __future__ import annotations

import json
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
NAME = "tune-it-agent"
PLANTED = "sk-planted-7f3a9c1e5b2d4068a1b2c3d4e5f60718"


def _spec(tmp_path: Path) -> Path:
    spec = json.loads((ROOT / "tuning" / "tuning.json").read_text())
    spec.update(
        dataset=str(ROOT / "datasets" / "flywheel-docs-golden.json"),
        per_kind={"happy_path": 1, "adversarial": 1},
        register={"name": NAME, "alias": "challenger"},
    )
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps(spec))
    return path


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            try:
                if needle in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue
    return hits


def test_tune_resumes_after_kill_registers_the_best_and_leaks_no_secret(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient
    from pydantic import SecretStr

    from flywheel.evaluation import load_dataset
    from flywheel.gate import Thresholds, run_gate
    from flywheel.runtime import LocalRuntimes
    from flywheel.tuning import load_spec, run_tune

    # the secret every process of this test can see: the LLM key, the web-search key, the server key
    for var in ("OPENAI_API_KEY", "EXA_API_KEY", "FLYWHEEL_API_KEY"):
        monkeypatch.setenv(var, PLANTED)
    settings = stack.model_copy(update={"api_key": SecretStr(PLANTED), "openai_api_key": SecretStr(PLANTED)})
    spec_path = _spec(tmp_path)
    runtimes = LocalRuntimes(settings)

    # 1. a tune killed with SIGKILL while its first trial runs: its runtime is left behind
    cmd = [sys.executable, "-m", "flywheel.cli.main", "tune", "--config", str(spec_path), "--name", "it-tune"]
    env = {**os.environ, **settings.to_env()}
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not runtimes.all() and time.monotonic() < deadline:
            time.sleep(0.5)
        leaked = [r.name for r in runtimes.all()]
        assert leaked, "the tune never deployed a runtime"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()

    # 2. the same tune again: it reports and removes the leak, runs all 8 trials, chooses, registers
    spec = load_spec(spec_path)
    assert len(spec.grid()) == 8
    seen: list[str] = []
    result = run_tune(settings, spec, name="it-tune", on_trial=lambda d, n, t: seen.append(t.key))
    assert result.leaked_removed == leaked
    assert runtimes.all() == []
    assert len(result.trials) == 8 and all(t.error is None for t in result.trials), [
        t.error for t in result.trials
    ]
    assert result.best is not None and result.best.key in result.front
    assert result.registered and result.registered["alias"] == "challenger"
    client = MlflowClient(settings.tracking_uri)
    version = client.get_model_version_by_alias(NAME, "challenger")
    assert version.version == str(result.registered["version"])
    assert version.tags["tune_study"] == "it-tune"
    children = client.search_runs(
        [client.get_experiment_by_name(settings.experiment).experiment_id],
        f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
    )
    assert len(children) == 8
    assert all(r.data.tags.get("flywheel.identity_digest") for r in children)
    for name in ("tune.md", "pareto.png", "trials.csv"):
        assert (result.folder / name).exists()
    assert "★" in (result.folder / "tune.md").read_text()

    # 3. a rerun finds every trial done: nothing is deployed again
    again = run_tune(settings, spec, name="it-tune", register=False)
    assert again.resumed == 8 and [t.key for t in again.trials] == [t.key for t in result.trials]

    # 4. the gate on what the tune registered
    ds = load_dataset(ROOT / "datasets" / "flywheel-docs-golden.json").take(
        {"happy_path": 2, "adversarial": 1}
    )
    decision = run_gate(
        settings,
        ds,
        f"models:/{NAME}@challenger",
        thresholds=Thresholds(bootstrap=200),
        report_dir=tmp_path / "gate",
    )
    assert decision.identity["versions"]["candidate"]["model_name"] == NAME
    assert runtimes.all() == []

    # 5. the planted secret is nowhere: logs, spools, reports, the tracking store and its artifacts
    hits = _files_containing(settings.data_path, PLANTED.encode()) + _files_containing(
        tmp_path, PLANTED.encode()
    )
    hits = [h for h in hits if not h.endswith("tuning.json")]
    assert hits == []
