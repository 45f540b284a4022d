"""Online evaluation lag: simulated production traffic → `flywheel monitor` → assessments on traces.

The real embedded stack (MLflow tracking server, Milvus Lite, llama.cpp) and the real agent server
run as processes; `flywheel simulate` sends 50 requests (4 users, the shipped users file, harmful
prompts among them) while `flywheel monitor run --sample-rate 1.0` runs as its own process. The
figures come from the tracking server, not from the monitor's own counters: for every answer the
simulator got, is there an ``online/*`` assessment on its trace, and how long after the trace
ended was the last one written?

Writes ``bench/results/online_lag.json`` with ``summary.scored_fraction`` (target ≥ 0.95) and
``summary.lag_p95_s`` (target ≤ 30 s), plus the monitor's own status (failures per scorer).
No baseline arm: MLflow's open-source online scoring needs its job runner (off here by design) and
runs only built-in judges; the issue reports ~7 minutes per trace for it on this machine.

Run: ``.venv/bin/python bench/online_lag.py`` (about 3 minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import docs_stack, pct, temp_stack_settings, write_result  # noqa: E402

REQUESTS = 50


def main() -> None:
    _, settings = temp_stack_settings(
        "fw-online-",
        collection="online_docs",
        experiment="online-lag-bench",
    )
    env = {**os.environ, **settings.to_env(), "FLYWHEEL_LANG": "en"}
    monitor = None
    with docs_stack(settings) as url:
        try:
            from flywheel.simulation import SimOptions, load_sim_config, simulate

            prompts = load_sim_config(ROOT / "simulation" / "load_config.json")
            simulate(SimOptions(url=url, requests=2, concurrency=1), prompts)  # creates the experiment
            monitor = subprocess.Popen(
                [
                    str(ROOT / ".venv" / "bin" / "flywheel"),
                    "monitor",
                    "run",
                    "--sample-rate",
                    "1.0",
                    "--poll",
                    "1",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            print(f"simulating {REQUESTS} requests with the monitor running …", flush=True)
            report = simulate(SimOptions(url=url, requests=REQUESTS, concurrency=4, seed=7), prompts)
            sim = report.summary()
            answered = [o for o in report.outcomes if o.ok and o.trace_id]
            import mlflow

            mlflow.set_tracking_uri(settings.tracking_uri)
            deadline = time.monotonic() + 90
            lags: dict[str, float] = {}
            while time.monotonic() < deadline:
                for o in answered:
                    if o.trace_id in lags:
                        continue
                    trace = mlflow.get_trace(o.trace_id)
                    if trace is None:
                        continue
                    online = [a for a in trace.info.assessments if a.name.startswith("online/")]
                    if online:
                        end_ms = trace.info.request_time + (trace.info.execution_duration or 0)
                        lags[o.trace_id] = (max(a.create_time_ms for a in online) - end_ms) / 1000
                if len(lags) == len(answered):
                    break
                time.sleep(2)
            status = json.loads(
                subprocess.run(
                    [str(ROOT / ".venv" / "bin" / "flywheel"), "monitor", "status", "--json"],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
        finally:
            if monitor is not None:
                monitor.terminate()
                monitor.wait(10)
    values = sorted(lags.values())
    summary = {
        "scored_fraction": round(len(lags) / len(answered), 4) if answered else 0.0,
        "lag_p50_s": round(pct(values, 50), 2) if values else None,
        "lag_p95_s": round(pct(values, 95), 2) if values else None,
        "answers": len(answered),
        "requests": sim["requests"],
        "monitor_failures": status.get("failures", {}),
        "harmful_refusal_rate": sim["harmful_refusal_rate"],
    }
    write_result("online_lag", summary, {"simulation": sim, "monitor_status": status})
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
