"""Agent server overhead: p50/p99 latency and requests/s against a bare FastAPI endpoint, same stub LLM.

Both arms call the same stub OpenAI-compatible LLM that answers instantly. The agent arm is the real
flywheel agent server (Responses API, guardrail, LangGraph graph, LLM client, tracing to a real
MLflow server) with a stub knowledge base (fixed hits), so that the figure is the server's own
overhead; a third arm adds real retrieval (MiniLM + Milvus Lite) for context. 1 and 16 concurrent
clients, bounded request counts. Writes bench/results/serving.json with summary.latency_ratio_p50_c16
and summary.rps_c16. Targets: ratio <= 1.5, rps >= 200.

Tracing is on in the agent arms, exported as the agent server does by default (OTLP batches to the
tracking server, which runs at lower CPU priority, as `flywheel up` starts it). After each agent arm
the bench waits for the tracking server to store every trace, and reports how long that took and
whether every request became a trace (summary.traces_stored vs traces_expected).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import free_port, pct, print_table, tree_cpu_s, write_result  # noqa: E402
from flywheel.config import load_settings  # noqa: E402
from flywheel.stack._services import embedded_specs  # noqa: E402

APPS = str(ROOT / "bench" / "_serving_apps.py")
REQUESTS = {1: 150, 16: 600}
if os.environ.get("BENCH_QUICK"):
    REQUESTS = {1: 20, 16: 64}


def start(args: list[str], url: str, env: dict[str, str] | None = None, nice: int = 0) -> subprocess.Popen:
    """Run ``args`` (a full command, or arguments for this Python) until ``url`` answers."""
    proc = subprocess.Popen(
        args if args[0] == sys.executable else [sys.executable, *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    for _ in range(600):
        try:
            httpx.get(url, timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{args} did not start")


def warmup_count(concurrency: int, total: int) -> int:
    return min(max(10, 2 * concurrency), total)


async def load(url: str, body: dict, concurrency: int, total: int) -> dict[str, float]:
    lat: list[float] = []
    errors = 0
    first_error = ""
    counter = iter(range(total))
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        # warm-up, concurrent so that every worker of a multi-worker server has answered
        warm = iter(range(warmup_count(concurrency, total)))

        async def warm_worker() -> None:
            for _ in warm:
                await client.post(url, json=body)

        await asyncio.gather(*(warm_worker() for _ in range(concurrency)))

        async def worker() -> None:
            nonlocal errors, first_error
            for _ in counter:
                t = time.perf_counter()
                resp = await client.post(url, json=body)
                lat.append((time.perf_counter() - t) * 1000)
                if resp.status_code != 200:
                    errors += 1
                    first_error = first_error or f"{resp.status_code} {resp.text[:200]}"

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {
        "p50_ms": pct(lat, 50),
        "p99_ms": pct(lat, 99),
        "rps": total / wall,
        "errors": errors,
        "n": total,
        "first_error": first_error,
    }


def experiment_id(db: str, name: str) -> int | None:
    with sqlite3.connect(db, timeout=30) as conn:
        row = conn.execute("SELECT experiment_id FROM experiments WHERE name = ?", (name,)).fetchone()
    return int(row[0]) if row else None


def complete_traces(db: str, experiment: str) -> int:
    """Traces of ``experiment`` the tracking server has stored *completely*: finished (state not
    IN_PROGRESS), root span present, and as many spans as the fullest trace of the arm (every
    request of an arm is the same, so every trace has the same spans). Read from the SQLite file:
    cheap, and exact; a trace whose root span has not arrived yet does not count."""
    exp = experiment_id(db, experiment)
    if exp is None:
        return 0
    with sqlite3.connect(db, timeout=30) as conn:
        rows = conn.execute(
            """SELECT t.request_id,
                      SUM(CASE WHEN s.parent_span_id IS NULL THEN 1 ELSE 0 END) AS roots,
                      COUNT(s.span_id) AS spans
               FROM trace_info t LEFT JOIN spans s ON s.trace_id = t.request_id
               WHERE t.experiment_id = ? AND t.status != 'IN_PROGRESS'
               GROUP BY t.request_id""",
            (exp,),
        ).fetchall()
    if not rows:
        return 0
    full = max(r[2] for r in rows)
    return sum(1 for r in rows if r[1] >= 1 and r[2] == full)


def drain(
    db: str, experiment: str, expected: int, limit_s: float = 180, stall_s: float = 20
) -> tuple[int, float]:
    """Wait until the tracking server has stored ``expected`` complete traces of ``experiment``, or
    stops making progress for ``stall_s``; so that one arm's trace backlog does not slow the next
    arm. Returns (complete traces, seconds until the last one arrived)."""
    t0, last, last_change = time.perf_counter(), -1, time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        n = complete_traces(db, experiment)
        if n >= expected:
            return n, time.perf_counter() - t0
        if n != last:
            last, last_change = n, time.perf_counter()
        elif time.perf_counter() - last_change > stall_s:
            return n, last_change - t0
        time.sleep(0.5)
    return complete_traces(db, experiment), time.perf_counter() - t0


# the arms at 16 clients: (key, label, experiment); all but `bare` trace every request
ARMS = [
    ("bare", "bare FastAPI + stub LLM", None),
    ("flywheel", "flywheel agent server, 1 worker", "bench-fw1"),
    ("flywheel_2w", "flywheel agent server, 2 workers", "bench-fw2"),
    ("mlflow", "MLflow AgentServer, default tracing", "bench-mlflow"),
    ("mlflow_otlp", "MLflow AgentServer, OTLP tracing", "bench-mlflow-otlp"),
    ("real_retrieval", "flywheel, real retrieval (MiniLM + Milvus Lite)", "bench-real"),
]
PATHS = {"bare": "/bare"}


def main() -> None:
    procs: list[subprocess.Popen] = []
    tmp = tempfile.mkdtemp()
    try:
        ports = {k: free_port() for k in ("stub", "mlflow_server", *(a[0] for a in ARMS))}
        llm = f"http://127.0.0.1:{ports['stub']}/v1"
        procs.append(start([APPS, "stub", str(ports["stub"])], f"http://127.0.0.1:{ports['stub']}/docs"))
        # the tracking server exactly as `flywheel up` runs it (one worker, nice 5: trace ingest yields
        # the CPU to serving)
        spec = embedded_specs(
            load_settings(data_dir=tmp, mlflow_port=ports["mlflow_server"], mlflow_tracking_uri=None),
            ["mlflow"],
        )[0]
        procs.append(start(spec.command, spec.url + "/health", spec.env, nice=spec.nice))
        db = f"{tmp}/mlflow.db"  # the stack's SQLite file in its data folder
        tracking = spec.url
        url = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
        tracking_pid = procs[-1].pid
        server: dict[str, subprocess.Popen] = {}
        server["bare"] = start([APPS, "bare", str(ports["bare"]), llm], url["bare"] + "/docs")
        server["flywheel"] = start(
            [APPS, "agent", str(ports["flywheel"]), llm, tracking, "bench-fw1"], url["flywheel"] + "/health"
        )
        server["flywheel_2w"] = start(
            [APPS, "agent-workers", str(ports["flywheel_2w"]), llm, tracking, "bench-fw2", "2"],
            url["flywheel_2w"] + "/health",
        )
        server["mlflow"] = start(
            [APPS, "mlflow", str(ports["mlflow"]), llm, tracking, "bench-mlflow", "mlflow"],
            url["mlflow"] + "/health",
        )
        server["mlflow_otlp"] = start(
            [APPS, "mlflow", str(ports["mlflow_otlp"]), llm, tracking, "bench-mlflow-otlp", "otlp"],
            url["mlflow_otlp"] + "/health",
        )
        procs.extend(server.values())
        env = {"FLYWHEEL_DATA_DIR": tmp, "FLYWHEEL_MILVUS_PORT": str(free_port())}
        subprocess.run(
            [sys.executable, "-m", "flywheel.cli.main", "ingest", str(ROOT / "docs")],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        server["real_retrieval"] = start(
            [APPS, "agent-real-kb", str(ports["real_retrieval"]), llm, tracking, "bench-real"],
            url["real_retrieval"] + "/health",
            env,
        )
        procs.append(server["real_retrieval"])

        body = {"input": [{"role": "user", "content": "Which port does the gateway use?"}]}
        rows, results = [], {}
        sent: dict[str, int] = {}
        for c, n in REQUESTS.items():
            results[c] = {}
            # one arm after the other, each once the tracking server has stored every trace of the
            # arm before it (so that no arm pays for another's backlog)
            for key, label, experiment in ARMS:
                if c == 1 and key not in ("bare", "flywheel"):
                    continue
                total = n // 3 if key == "real_retrieval" else n
                cpu0, trk0 = tree_cpu_s(server[key].pid), tree_cpu_s(tracking_pid)
                r = asyncio.run(load(url[key] + PATHS.get(key, "/responses"), body, c, total))
                if experiment:
                    sent[experiment] = sent.get(experiment, 0) + total + warmup_count(c, total)
                    stored, waited = drain(db, experiment, sent[experiment])
                    r["traces_sent"], r["traces_stored"] = sent[experiment], stored
                    r["trace_backlog_s"] = round(waited, 1)
                # CPU per request (warm-up included) of the server and of the tracking server storing
                # its traces: the lever of requests/s on a machine the arms share
                requests = total + warmup_count(c, total)
                r["server_cpu_ms_per_request"] = round(
                    (tree_cpu_s(server[key].pid) - cpu0) * 1000 / requests, 2
                )
                r["tracking_cpu_ms_per_request"] = round(
                    (tree_cpu_s(tracking_pid) - trk0) * 1000 / requests, 2
                )
                results[c][key] = r
                if r["errors"]:
                    print(f"{key} c={c}: {r['errors']} errors, first: {r['first_error']}")
                rows.append(
                    (
                        label,
                        str(c),
                        f"{r['p50_ms']:.1f}",
                        f"{r['p99_ms']:.1f}",
                        f"{r['rps']:.0f}",
                        str(int(r["errors"])),
                        f"{r['traces_stored']}/{r['traces_sent']}" if experiment else "-",
                        f"{r['trace_backlog_s']}" if experiment else "-",
                        f"{r['server_cpu_ms_per_request']}",
                        f"{r['tracking_cpu_ms_per_request']}",
                    )
                )
        c16 = results[16]
        two = c16["flywheel_2w"]
        summary = {
            "rps_c16": round(two["rps"], 1),
            "rps_ratio_vs_mlflow_c16": round(two["rps"] / c16["mlflow"]["rps"], 2),
            "rps_ratio_vs_mlflow_otlp_c16": round(two["rps"] / c16["mlflow_otlp"]["rps"], 2),
            "traces_stored_fraction": round(two["traces_stored"] / two["traces_sent"], 4),
            "latency_ratio_p50_c16": round(two["p50_ms"] / c16["bare"]["p50_ms"], 2),
            "rps_c16_1_worker": round(c16["flywheel"]["rps"], 1),
            "latency_ratio_p50_c16_1_worker": round(c16["flywheel"]["p50_ms"] / c16["bare"]["p50_ms"], 2),
            "latency_ratio_p50_c1": round(results[1]["flywheel"]["p50_ms"] / results[1]["bare"]["p50_ms"], 2),
            "bare_rps_c16": round(c16["bare"]["rps"], 1),
            "mlflow_rps_c16": round(c16["mlflow"]["rps"], 1),
            "mlflow_otlp_rps_c16": round(c16["mlflow_otlp"]["rps"], 1),
            "mlflow_traces_stored_fraction": round(
                c16["mlflow"]["traces_stored"] / c16["mlflow"]["traces_sent"], 4
            ),
            "mlflow_trace_backlog_s": c16["mlflow"]["trace_backlog_s"],
            "mlflow_otlp_traces_stored_fraction": round(
                c16["mlflow_otlp"]["traces_stored"] / c16["mlflow_otlp"]["traces_sent"], 4
            ),
            "p50_ms_c1": round(results[1]["flywheel"]["p50_ms"], 2),
            "p99_ms_c16": round(two["p99_ms"], 2),
            "rps_c16_real_retrieval": round(c16["real_retrieval"]["rps"], 1),
            "server_cpu_ms_per_request": {k: c16[k]["server_cpu_ms_per_request"] for k in c16},
            "tracking_cpu_ms_per_request": {k: c16[k]["tracking_cpu_ms_per_request"] for k in c16},
            "errors": sum(int(r["errors"]) for res in results.values() for r in res.values()),
            "targets": {
                "rps_c16": ">= 150",
                "rps_ratio_vs_mlflow_c16": ">= 2",
                "rps_ratio_vs_mlflow_otlp_c16": ">= 1.5",
                "traces_stored_fraction": "1.0",
            },
        }
        print_table(
            "agent servers vs a bare endpoint (stub LLM answering instantly, tracing to one MLflow server)",
            rows,
            (
                "arm",
                "clients",
                "p50 ms",
                "p99 ms",
                "req/s",
                "errors",
                "complete traces",
                "backlog s",
                "server CPU ms/req",
                "tracking CPU ms/req",
            ),
        )
        print(
            f"\nflywheel (2 workers) at 16 clients: {summary['rps_c16']} req/s, "
            f"{summary['rps_ratio_vs_mlflow_c16']}x MLflow AgentServer (defaults), "
            f"{summary['rps_ratio_vs_mlflow_otlp_c16']}x MLflow AgentServer (OTLP); "
            f"traces stored {summary['traces_stored_fraction']:.0%}"
        )
        print(f"wrote {write_result('serving', summary, {str(k): v for k, v in results.items()})}")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, 15)
                p.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, 9)


if __name__ == "__main__":
    main()
