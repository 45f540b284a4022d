"""The deciding half on more than one process: tune workers sharing a PostgreSQL study, monitor
replicas sharing the traces, gateway replicas sharing a Redis limit. Real engines (PostgreSQL and
Redis from Debian's packages, MLflow's tracking server, Milvus Lite), real worker processes.

Latency-bound on purpose (as the issue asks): the evaluation target of a tune trial and the monitor's
judge are a remote-like service that answers after a fixed delay (``bench/_scaleout_apps.py``), so
the speed-ups measure coordination, not this machine's two cores. Each tune worker deploys nothing
(its runtime backend points at that service); everything else is the product's path.

1. **tune**: a 16-trial grid (top_k × temperature), 10 items per trial at concurrency 2, the target
   answering after ``--delay`` s. Workers are started first and wait for the study (a worker pod
   waits the same way); the clock starts when the coordinator starts, and stops when every process
   has exited. ``tune_speedup_4_workers`` = wall(1) / wall(4) (coordinator + 3 workers);
   ``tune_duplicate_trials``: configurations completed more than once; a third run with 4 processes
   kills one worker with SIGKILL mid-run: ``tune_lost_trials_after_kill`` = grid configurations not
   completed, ``tune_registrations`` = model versions registered per study (1 expected).
2. **monitor**: replicas follow an experiment (``flywheel monitor run --replica I/N``) with the
   online scorers and a judge answering after ``--judge-delay`` s; traces are logged once every
   replica has published its first status; the clock runs until the replicas' published counters
   add up to every trace. ``monitor_speedup_3_replicas`` = wall(1) / wall(3); then 3 replicas with
   one killed (SIGKILL) and restarted mid-run: ``monitor_duplicates`` = (trace, scorer) pairs
   assessed more than once, ``monitor_missed`` = traces without their judge assessment.
3. **gateway**: two gateway processes with one route limited to ``--limit`` calls/s, driven at
   several times that for 10 s through both: ``gateway_limit_error`` = |admitted/s − limit| / limit
   with the limit in Redis (``gateway.limits_storage``); ``gateway_limit_error_per_replica`` the same
   with in-memory limits (the N× over-admission the shared store removes).

Writes bench/results/scaleout.json. Run: ``.venv/bin/python bench/scaleout.py`` (about 12 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests.engines import (  # noqa: E402
    gateway_replica,
    limited_gateway_config,
    postgres_missing,
    postgres_server,
    redis_missing,
    redis_server,
    stop,
    wait_http,
)

from bench._util import docs_stack, print_table, temp_stack_settings, write_result  # noqa: E402
from flywheel.stack import free_port  # noqa: E402

PY = sys.executable


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    stop(*procs)


def _remote(delay: float) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [PY, "-m", "bench._scaleout_apps", "remote", str(port), str(delay)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_http(url, proc)
    return url, proc


# ---------------------------------------------------------------------------------------- tune
def _tune_spec(folder: Path, per_kind: dict[str, int]) -> Path:
    spec = {
        "search": {"top_k": [3, 4, 5, 6], "temperature": [0.0, 0.2, 0.4, 0.6]},
        "strategy": "grid",
        "dataset": str(ROOT / "datasets" / "flywheel-docs-golden.json"),
        "per_kind": per_kind,
        "scorers": ["citations", "latency"],
        "objective": {"citations": 1},
        "constraints": {},
        "register": {"name": "scaleout-agent", "alias": "challenger"},
    }
    path = folder / "scaleout-tuning.json"
    path.write_text(json.dumps(spec))
    return path


def _tune_proc(settings: Any, remote: str, args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.to_env(), "FLYWHEEL_TUNE_HEARTBEAT_S": "1", "COLUMNS": "200"}
    return subprocess.Popen(
        [PY, "-m", "bench._scaleout_apps", "tune-worker", remote, "--", *args],
        cwd=ROOT,
        env=env,
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )


def tune_run(settings: Any, remote: str, db: str, spec: Path, workers: int, kill: bool) -> dict[str, Any]:
    from mlflow import MlflowClient

    from flywheel.tuning._distributed import SharedStudy

    name = f"so-{workers}{'k' if kill else ''}-{uuid.uuid4().hex[:6]}"
    logs = settings.data_path / "bench-logs"
    logs.mkdir(exist_ok=True)
    joiners = [
        _tune_proc(settings, remote, ["--worker", "--storage", db, "--name", name], logs / f"{name}-w{i}.log")
        for i in range(workers - 1)
    ]
    deadline = time.monotonic() + 120
    while not all(
        (logs / f"{name}-w{i}.log").exists()
        and "waiting for study" in (logs / f"{name}-w{i}.log").read_text()
        for i in range(workers - 1)
    ):
        if time.monotonic() > deadline:
            raise RuntimeError("tune workers did not start")
        time.sleep(0.2)
    t0 = time.monotonic()
    coordinator = _tune_proc(
        settings, remote, ["--config", str(spec), "--storage", db, "--name", name], logs / f"{name}-c.log"
    )
    killed = None
    if kill:
        time.sleep(12)  # mid-run: every process is inside a trial
        killed = joiners[0].pid
        joiners[0].send_signal(signal.SIGKILL)
    procs = [coordinator, *joiners]
    for p in procs:
        p.wait(900)
    wall = time.monotonic() - t0
    codes = [p.returncode for p in procs]
    shared = SharedStudy(db, name)
    shared.join(timeout_s=5)
    summary = shared.summary()
    completed = {r["key"] for r in shared.results() if not r.get("error")}
    client = MlflowClient(settings.tracking_uri)
    registered = [
        v for v in client.search_model_versions("name = 'scaleout-agent'") if v.tags.get("tune_study") == name
    ]
    return {
        "study": name,
        "processes": workers,
        "wall_s": round(wall, 1),
        "exit_codes": codes,
        "killed_pid": killed,
        "trials": summary,
        "completed_configurations": len(completed),
        "registrations": len(registered),
    }


# ------------------------------------------------------------------------------------- monitor
def _log_traces(settings: Any, experiment: str, n: int) -> list[str]:
    import mlflow

    from flywheel.tracking import flush_traces

    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_experiment(experiment)
    ids = []
    for i in range(n):
        with mlflow.start_span("agent") as root:
            q = f"How do I set option {i} of the stack?"
            root.set_inputs({"question": q})
            with mlflow.start_span("doc_search") as s:
                s.set_inputs({"query": q})
                s.set_outputs([{"page_content": f"Option {i} is set in flywheel.toml under [stack]."}])
            root.set_outputs(
                {"answer": f"Set option {i} in flywheel.toml under [stack] [1].", "sources": ["x.md"]}
            )
            ids.append(root.trace_id)
    flush_traces()
    return ids


def _replica(
    settings: Any, remote: str, experiment: str, i: int, n: int, log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **settings.to_env(),
        "FLYWHEEL_JUDGE_BASE_URL": remote + "/v1",
        "FLYWHEEL_JUDGE_RPS": "1000",
    }
    args = ["monitor", "run", "--experiment", experiment, "--poll", "0.5"]
    if n > 1:
        args += ["--replica", f"{i}/{n}"]
    return subprocess.Popen(
        [PY, "-m", "flywheel.cli.main", *args],
        cwd=ROOT,
        env=env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
    )


def _published(client: Any, exp_id: str) -> dict[str, dict[str, Any]]:
    tags = client.get_experiment(exp_id).tags or {}
    return {k: json.loads(v) for k, v in tags.items() if k.startswith("flywheel.monitor.all.")}


def monitor_run(settings: Any, remote: str, replicas: int, traces: int, kill: bool) -> dict[str, Any]:
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    experiment = f"so-monitor-{replicas}{'k' if kill else ''}-{uuid.uuid4().hex[:6]}"
    exp_id = client.create_experiment(experiment)
    logs = settings.data_path / "bench-logs"
    logs.mkdir(exist_ok=True)
    procs = [
        _replica(settings, remote, experiment, i, replicas, logs / f"{experiment}-{i}.log")
        for i in range(replicas)
    ]
    try:
        deadline = time.monotonic() + 180
        while len(_published(client, exp_id)) < replicas:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("monitor replicas did not start")
            time.sleep(0.5)
        ids = _log_traces(settings, experiment, traces)
        t0 = time.monotonic()
        restarted = False
        deadline = time.monotonic() + 900
        while True:
            scored = sum(r.get("scored", 0) for r in _published(client, exp_id).values())
            if kill and not restarted and scored >= traces // 4:
                procs[1].send_signal(signal.SIGKILL)  # mid-run, then back under the same identity
                procs[1].wait(10)
                time.sleep(2)
                procs[1] = _replica(settings, remote, experiment, 1, replicas, logs / f"{experiment}-1.log")
                restarted = True
            if scored >= traces or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        wall = time.monotonic() - t0
        published = _published(client, exp_id).values()
        shares = sorted(r.get("scored", 0) for r in published)
        failures = sum(r.get("failures", 0) for r in published)  # retried by the replicas
        given_up = sum(r.get("given_up", 0) for r in published)
    finally:
        _stop(procs)
    counts: dict[tuple[str, str], int] = {}
    token = None
    while True:
        page = client.search_traces(
            locations=[exp_id], max_results=200, page_token=token, include_spans=False
        )
        for t in page:
            for a in t.info.assessments:
                if a.name.startswith("online/"):
                    key = (t.info.trace_id, a.name)
                    counts[key] = counts.get(key, 0) + 1
        token = page.token
        if not token:
            break
    return {
        "experiment": experiment,
        "replicas": replicas,
        "traces": traces,
        "wall_s": round(wall, 1),
        "traces_per_s": round(traces / wall, 2),
        "killed_and_restarted": kill,
        "duplicates": sum(1 for v in counts.values() if v > 1),
        "missed": sum(1 for tid in ids if (tid, "online/judge_groundedness") not in counts),
        "assessments": sum(counts.values()),
        "scored_per_replica": shares,  # the hash split's imbalance: the largest share sets the wall time
        "scorer_failures_retried": failures,
        "given_up": given_up,
    }


# ------------------------------------------------------------------------------------- gateway
def _gateway_config(folder: Path, upstream: str, limit: int, storage: str | None) -> Path:
    import yaml

    config = limited_gateway_config(upstream, limit, "second", storage)
    path = folder / f"gw-{'shared' if storage else 'local'}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


dropped = [0]  # transport errors of the last _drive (a run that lost connections says so)


async def _drive(urls: list[str], seconds: float, concurrency: int) -> tuple[int, int, float]:
    import httpx

    body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
    ok = limited = 0
    dropped[0] = 0
    async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=concurrency * 2)) as client:
        # one warm-up second outside the window: the clock starts with every connection open
        start = time.monotonic() + 1.0
        until = start + seconds

        async def loop(k: int) -> None:
            nonlocal ok, limited
            i = k
            while True:
                if time.monotonic() >= until:
                    return
                try:
                    r = await client.post(urls[i % len(urls)] + "/v1/chat/completions", json=body)
                except httpx.TransportError:  # a connection the server closed under load: counted, not fatal
                    dropped[0] += 1
                    await asyncio.sleep(0.05)
                    continue
                i += 1
                if time.monotonic() < start:
                    continue
                if r.status_code == 200:
                    ok += 1
                elif r.status_code == 429:
                    limited += 1
                    await asyncio.sleep(0.02)

        await asyncio.gather(*(loop(k) for k in range(concurrency)))
    return ok, limited, seconds


def gateway_run(
    folder: Path, upstream: str, limit: int, storage: str | None, seconds: float
) -> dict[str, Any]:
    config = _gateway_config(folder, upstream, limit, storage)
    with ExitStack() as replicas:
        urls = [replicas.enter_context(gateway_replica(config, ROOT)) for _ in range(2)]
        ok, limited, window = asyncio.run(_drive(urls, seconds, 16))
    rate = ok / window
    return {
        "limits": "shared (redis)" if storage else "per replica",
        "limit_per_s": limit,
        "admitted_per_s": round(rate, 2),
        "rejected_per_s": round(limited / window, 2),
        "error": round(abs(rate - limit) / limit, 4),
        "transport_errors": dropped[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--delay",
        type=float,
        default=2.0,
        help="seconds the tune's target takes per answer (a remote LLM agent)",
    )
    ap.add_argument(
        "--judge-delay", type=float, default=1.5, help="seconds the monitor's judge takes (a remote LLM)"
    )
    ap.add_argument("--traces", type=int, default=120)
    ap.add_argument("--limit", type=int, default=40, help="gateway calls per second")
    ap.add_argument("--quick", action="store_true", help="smaller figures for a smoke run")
    args = ap.parse_args()
    for missing in (postgres_missing(), redis_missing()):
        if missing:
            sys.exit(f"cannot run: {missing}")
    per_kind = {"happy_path": 8, "edge_case": 2} if not args.quick else {"happy_path": 2}
    traces = args.traces if not args.quick else 24

    folder, settings = temp_stack_settings("flywheel-scaleout-", experiment="scaleout")
    details: dict[str, Any] = {
        "delay_s": args.delay,
        "judge_delay_s": args.judge_delay,
        "items_per_trial": sum(per_kind.values()),
    }
    remote, remote_proc = _remote(args.delay)
    judge, judge_proc = _remote(args.judge_delay)
    try:
        with docs_stack(settings, agent=False), postgres_server(("optuna",)) as pg:
            db = pg + "/optuna"
            spec = _tune_spec(folder, per_kind)
            details["tune"] = []
            for workers, kill in ((1, False), (4, False), (4, True)):
                print(f"tune: {workers} process(es){' with one killed' if kill else ''} …", flush=True)
                details["tune"].append(tune_run(settings, remote, db, spec, workers, kill))
                print("  ", details["tune"][-1], flush=True)
            details["monitor"] = []
            for replicas, kill in ((1, False), (3, False), (3, True)):
                print(
                    f"monitor: {replicas} replica(s){' with one killed and restarted' if kill else ''} …",
                    flush=True,
                )
                details["monitor"].append(monitor_run(settings, judge, replicas, traces, kill))
                print("  ", details["monitor"][-1], flush=True)
        with redis_server() as redis:
            port = free_port()
            stub = subprocess.Popen(
                [PY, "-m", "bench._gateway_apps", "stub", str(port)],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                upstream = f"http://127.0.0.1:{port}"
                time.sleep(2)
                details["gateway"] = [
                    gateway_run(folder, upstream, args.limit, redis, 10),
                    gateway_run(folder, upstream, args.limit, None, 10),
                ]
            finally:
                _stop([stub])
    finally:
        _stop([remote_proc, judge_proc])

    t1, t4, tk = details["tune"]
    m1, m3, mk = details["monitor"]
    g_shared, g_local = details["gateway"]
    summary = {
        "tune_speedup_4_workers": round(t1["wall_s"] / t4["wall_s"], 2),
        "tune_duplicate_trials": max(t["trials"].get("duplicates", 0) for t in details["tune"]),
        "tune_lost_trials_after_kill": 16 - tk["completed_configurations"],
        "tune_registrations": [t["registrations"] for t in details["tune"]],
        "tune_retried_after_kill": tk["trials"].get("fail", 0),
        "monitor_speedup_3_replicas": round(m1["wall_s"] / m3["wall_s"], 2),
        "monitor_duplicates": mk["duplicates"] + m3["duplicates"] + m1["duplicates"],
        "monitor_missed": mk["missed"] + m3["missed"] + m1["missed"],
        "gateway_limit_error": g_shared["error"],
        "gateway_limit_error_per_replica": g_local["error"],
    }
    path = write_result("scaleout", summary, details)
    print_table(
        "scale-out",
        [(k, json.dumps(v)) for k, v in summary.items()],
        ("figure", "value"),
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
