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
from bench._util import free_port, pct, print_table, write_result  # noqa: E402
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


async def load(url: str, body: dict, concurrency: int, total: int) -> dict[str, float]:
    lat: list[float] = []
    errors = 0
    first_error = ""
    counter = iter(range(total))
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:
        for _ in range(min(10, total)):  # warm-up
            await client.post(url, json=body)

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


def trace_count(db: str) -> int:
    """Traces the tracking server has stored (read from its SQLite file: cheap, and exact)."""
    with sqlite3.connect(db, timeout=30) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM trace_info").fetchone()[0])


def drain(db: str, expected: int, limit_s: float = 300) -> tuple[int, float]:
    """Wait until the tracking server has stored ``expected`` traces (or stops making progress);
    so that one arm's trace backlog does not slow the next arm. Returns (count, seconds waited)."""
    t0, last, last_change = time.perf_counter(), -1, time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        n = trace_count(db)
        if n >= expected:
            return n, time.perf_counter() - t0
        if n != last:
            last, last_change = n, time.perf_counter()
        elif time.perf_counter() - last_change > 20:
            break
        time.sleep(0.5)
    return trace_count(db), time.perf_counter() - t0


def main() -> None:
    procs: list[subprocess.Popen] = []
    tmp = tempfile.mkdtemp()
    try:
        stub_port, bare_port, agent_port, real_port, mlflow_port = (free_port() for _ in range(5))
        llm = f"http://127.0.0.1:{stub_port}/v1"
        procs.append(start([APPS, "stub", str(stub_port)], f"http://127.0.0.1:{stub_port}/docs"))
        # the tracking server exactly as `flywheel up` runs it (one worker, nice 5: trace ingest yields
        # the CPU to serving)
        spec = embedded_specs(
            load_settings(data_dir=tmp, mlflow_port=mlflow_port, mlflow_tracking_uri=None), ["mlflow"]
        )[0]
        procs.append(start(spec.command, spec.url + "/health", spec.env, nice=spec.nice))
        db = f"{tmp}/mlflow.db"  # the stack's SQLite file in its data folder
        tracking = spec.url
        procs.append(start([APPS, "bare", str(bare_port), llm], f"http://127.0.0.1:{bare_port}/docs"))
        procs.append(
            start([APPS, "agent", str(agent_port), llm, tracking], f"http://127.0.0.1:{agent_port}/health")
        )
        env = {"FLYWHEEL_DATA_DIR": tmp, "FLYWHEEL_MILVUS_PORT": str(free_port())}
        subprocess.run(
            [sys.executable, "-m", "flywheel.cli.main", "ingest", str(ROOT / "docs")],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        procs.append(
            start(
                [APPS, "agent-real-kb", str(real_port), llm, tracking],
                f"http://127.0.0.1:{real_port}/health",
                env,
            )
        )

        body = {"input": "Which port does the gateway use?"}
        rows, results = [], {}
        expected = trace_count(db)
        ingest: dict[str, float] = {}
        for c, n in REQUESTS.items():
            # interleave the arms so they see the same machine noise; each arm starts once the
            # tracking server has stored every trace of the arm before it
            bare = asyncio.run(load(f"http://127.0.0.1:{bare_port}/bare", body, c, n))
            agent = asyncio.run(load(f"http://127.0.0.1:{agent_port}/responses", body, c, n))
            expected += n + min(10, n)  # + the warm-up requests
            stored, waited = drain(db, expected)
            agent["traces_stored"], agent["trace_backlog_s"] = stored, round(waited, 1)
            ingest[f"c{c}"] = round(waited, 1)
            real = asyncio.run(load(f"http://127.0.0.1:{real_port}/responses", body, c, n // 3))
            expected += n // 3 + min(10, n // 3)
            stored, _ = drain(db, expected)
            results[c] = {"bare": bare, "agent": agent, "agent_real_retrieval": real}
            for arm, r in results[c].items():
                if r["errors"]:
                    print(f"{arm} c={c}: {r['errors']} errors, first: {r['first_error']}")
            for name, r in (
                ("bare FastAPI + stub LLM", bare),
                ("agent server (stub KB)", agent),
                ("agent server (real retrieval)", real),
            ):
                rows.append(
                    (
                        name,
                        str(c),
                        f"{r['p50_ms']:.1f}",
                        f"{r['p99_ms']:.1f}",
                        f"{r['rps']:.0f}",
                        str(int(r["errors"])),
                    )
                )
        summary = {
            "latency_ratio_p50_c16": round(results[16]["agent"]["p50_ms"] / results[16]["bare"]["p50_ms"], 2),
            "latency_ratio_p50_c1": round(results[1]["agent"]["p50_ms"] / results[1]["bare"]["p50_ms"], 2),
            "rps_c16": round(results[16]["agent"]["rps"], 1),
            "bare_rps_c16": round(results[16]["bare"]["rps"], 1),
            "p50_ms_c1": round(results[1]["agent"]["p50_ms"], 2),
            "p99_ms_c16": round(results[16]["agent"]["p99_ms"], 2),
            "rps_c16_real_retrieval": round(results[16]["agent_real_retrieval"]["rps"], 1),
            "errors": sum(int(r[a]["errors"]) for r in results.values() for a in r),
            # every request is a trace: stored traces vs requests sent (warm-up included)
            "traces_expected": expected,
            "traces_stored": trace_count(db),
            "trace_backlog_s_after_c16": ingest["c16"],
            "targets": {"latency_ratio_p50_c16": "<= 1.5", "rps_c16": ">= 200"},
        }
        print_table(
            "agent server vs bare endpoint (stub LLM answering instantly)",
            rows,
            ("arm", "clients", "p50 ms", "p99 ms", "req/s", "errors"),
        )
        print(
            f"\np50 ratio at 16 clients: {summary['latency_ratio_p50_c16']} · agent req/s at 16: {summary['rps_c16']}"
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
