"""`flywheel monitor run` as two replicas on the real tracking server: each trace is scored by
exactly one of them, none is skipped; `monitor status` adds up what both publish; a replica that
lost its cursor (killed between writing an assessment and saving) scores nothing twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from flywheel.config import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = "monitor-replicas"


def _traces(settings: Settings, n: int) -> list[str]:
    import mlflow

    from flywheel.tracking import flush_traces

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    ids = []
    for i in range(n):
        with mlflow.start_span("agent") as span:
            span.set_inputs({"question": f"How do I configure option {i}?"})
            span.set_outputs(
                {"answer": f"Set option {i} in flywheel.toml [1].", "sources": ["docs/config.md"]}
            )
            ids.append(span.trace_id)
    flush_traces()
    return ids


def _run(settings: Settings, *args: str) -> str:
    env = {**os.environ, **settings.to_env()}
    out = subprocess.run(
        [sys.executable, "-m", "flywheel.cli.main", "monitor", *args, "--experiment", EXPERIMENT],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def _assessments(settings: Settings) -> Counter[tuple[str, str]]:
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    counts: Counter[tuple[str, str]] = Counter()
    for t in client.search_traces(locations=[exp.experiment_id], max_results=500, include_spans=False):
        for a in t.info.assessments:
            if a.name.startswith("online/"):
                counts[(t.info.trace_id, a.name)] += 1
    return counts


def test_two_replicas_score_every_trace_exactly_once(stack: Settings) -> None:
    ids = _traces(stack, 24)
    time.sleep(3)  # past the monitor's settle time
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flywheel.cli.main",
                "monitor",
                "run",
                "--once",
                "--replica",
                f"{i}/2",
                "--experiment",
                EXPERIMENT,
            ],
            env={**os.environ, **stack.to_env()},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    counts = _assessments(stack)
    for tid in ids:
        assert counts[(tid, "online/latency")] == 1, (tid, outs)
    assert max(counts.values()) == 1  # no assessment written twice
    # each replica did a share of the work
    assert all("scored 0 trace(s)" not in out for out in outs), outs

    status = json.loads(_run(stack, "status", "--json"))
    assert status["seen"] == 24 and status["scored"] == 24
    assert sorted(r["replica"] for r in status["replicas"]) == [0, 1]

    # replica 0 loses its cursor (as if killed after writing, before saving): nothing is rescored
    for path in (stack.data_path / "monitor").glob("*-r0of2.json"):
        path.unlink()
    _run(stack, "run", "--once", "--replica", "0/2")
    assert max(_assessments(stack).values()) == 1


def test_a_busy_window_and_a_failed_write_lose_no_trace(stack: Settings) -> None:
    """More traces than one search page holds, all inside the look-back window; one assessment
    write refused once. Every trace of the replica's share is scored exactly once: pages of handled
    (or another replica's) traces do not hide newer ones, and the refused write is tried again on
    the next poll instead of the trace being marked done."""
    import mlflow

    from flywheel.evaluation import ScorerContext
    from flywheel.monitoring import MonitorOptions, OnlineMonitor
    from flywheel.monitoring._online import partition_of

    experiment = "monitor-busy-window"
    mlflow.set_tracking_uri(stack.tracking_uri)
    mlflow.set_experiment(experiment)
    ids = []
    for i in range(23):
        with mlflow.start_span("agent") as span:
            span.set_inputs({"question": f"What does setting {i} do?"})
            span.set_outputs({"answer": f"Setting {i} does a thing [1].", "sources": ["a.md"]})
            ids.append(span.trace_id)
    from flywheel.tracking import flush_traces

    flush_traces()
    time.sleep(2)
    mine = [t for t in ids if partition_of(t, 2) == 1]
    refused = {mine[-1]}  # the last trace of the share: its first write is refused

    def log(trace_id: str, name: str, value: float, rationale: str, metadata: dict[str, str]) -> None:
        if trace_id in refused:
            refused.discard(trace_id)
            raise RuntimeError("database is locked")
        OnlineMonitor._log_feedback(trace_id, name, value, rationale, metadata)

    opts = MonitorOptions(scorers=["latency"], batch=4, settle_s=0.5, replica=1, replicas=2)
    monitor = OnlineMonitor(stack, opts, ScorerContext(), experiment=experiment, log_assessment=log)
    for _ in range(12):
        monitor.poll_once()
    status = monitor.status()
    assert status["scored"] == len(mine), status
    assert status["given_up"] == 0 and status["failures"] == {"latency (write)": 1}, status
    counts: Counter[str] = Counter()
    for tid in ids:
        for a in mlflow.get_trace(tid).info.assessments:
            if a.name == "online/latency":
                counts[tid] += 1
    assert dict(counts) == {tid: 1 for tid in mine}  # all of its share, once; none of the other's
