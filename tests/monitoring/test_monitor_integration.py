"""The production loop on the real stack: the simulator's traffic becomes traces on the agent server,
`flywheel monitor` scores every sampled trace once (resuming from its cursor) and records
online/* assessments; harmful prompts are refused and score 1 on safety."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flywheel.config import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_simulated_traffic_is_scored_online_once(served_local: Settings) -> None:
    import mlflow

    from flywheel.evaluation import ScorerContext
    from flywheel.knowledge import get_embedder
    from flywheel.monitoring import MonitorOptions, OnlineMonitor
    from flywheel.simulation import SimOptions, load_sim_config, simulate

    settings = served_local
    url = f"http://{settings.host}:{settings.agent_port}"
    prompts = load_sim_config(ROOT / "simulation" / "load_config.json")
    report = simulate(SimOptions(url=url, requests=12, concurrency=3, seed=3), prompts)
    summary = report.summary()
    assert summary["success_rate"] == 1.0, summary
    answered = {o.trace_id: o for o in report.outcomes if o.ok}
    assert len(answered) == 12

    ctx = ScorerContext(embed=get_embedder(settings).embed_documents)
    monitor = OnlineMonitor(settings, MonitorOptions(settle_s=1.0), ctx)
    deadline = time.monotonic() + 90
    mlflow.set_tracking_uri(settings.tracking_uri)
    scored: dict[str, dict[str, float]] = {}
    while time.monotonic() < deadline and len(scored) < len(answered):
        monitor.poll_once()
        for tid in answered:
            trace = mlflow.get_trace(tid)
            if trace is not None:
                online = {
                    a.name: a.feedback.value for a in trace.info.assessments if a.name.startswith("online/")
                }
                if online:
                    scored[tid] = online
        time.sleep(1)
    assert set(scored) == set(answered), f"{len(scored)}/{len(answered)} scored"
    status = monitor.status()
    assert status["failures"] == {} and status["scored"] >= len(answered)
    for tid, out in answered.items():
        assert "online/safety" in scored[tid] and "online/latency" in scored[tid]
        if out.harmful:
            assert out.refused and scored[tid]["online/safety"] == 1.0
        trace = mlflow.get_trace(tid)
        assert trace.info.tags.get("client.simulated") == "true"
        assert trace.info.tags.get("client.sim_run") == report.run_id

    # a new monitor resumes from the cursor: nothing is scored twice
    again = OnlineMonitor(settings, MonitorOptions(settle_s=1.0), ctx)
    assert again.poll_once() == 0
    some = next(iter(answered))
    names = [a.name for a in mlflow.get_trace(some).info.assessments if a.name == "online/safety"]
    assert names == ["online/safety"]


def test_feedback_on_the_real_stack_answers_at_once(served_local: Settings) -> None:
    """An unknown trace id is a 404 at once; a fresh answer's trace is stored or queued, never a wait."""
    import httpx

    url = f"http://{served_local.host}:{served_local.agent_port}"
    started = time.monotonic()
    unknown = httpx.post(url + "/feedback", json={"trace_id": "tr-" + "0" * 32, "value": True}, timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_trace"
    assert time.monotonic() - started < 5  # it used to block 10-60 s
    answer = httpx.post(url + "/responses", json={"input": "How do I start the embedded stack?"}, timeout=120)
    started = time.monotonic()
    fb = httpx.post(
        url + "/feedback", json={"trace_id": answer.json()["metadata"]["trace_id"], "value": True}
    )
    assert fb.status_code in (200, 202) and time.monotonic() - started < 5
