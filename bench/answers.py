"""Grounded answers end to end on the real stack: latency, answers/s, traces, memory, cold ask.

No stubs: the MLflow tracking server (SQLite, as `flywheel up` runs it), the Milvus Lite service,
real embeddings (MiniLM + the USE companion), the agent server (`python -m flywheel.serving`) with
the grounded policy and tracing on, questions from the golden sets (flywheel docs and, when
../shared is present, the MLflow docs) over an index of both corpora. Arms, in the same run:

- ``question_time``: sentences embedded for every question (``FLYWHEEL_UNIT_VECTORS=question_time``,
  the path before sentence vectors were stored);
- ``stored``: the default — sentence vectors read with the chunk, the question embedded once;
- ``retrieval``: the same server's ``POST /search`` (embedding + hybrid search + a trace, no answer):
  the floor of an answer's cost.

1 and 16 concurrent clients, bounded request counts. Then ``cold_ask_s``: a fresh `flywheel ask`
process against the running stack, median of 3. Writes bench/results/answers.json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import free_port, pct, print_table, tree_cpu_s, write_result  # noqa: E402
from bench.serving import experiment_id, start  # noqa: E402
from flywheel.config import load_settings  # noqa: E402
from flywheel.stack._services import embedded_specs  # noqa: E402

SHARED = ROOT.parent / "shared"
REQUESTS = {1: 80, 16: 480}
SLOW = {1: 20, 16: 64}  # the question-time arm is ~20x slower: fewer requests, same questions
if os.environ.get("BENCH_QUICK"):
    REQUESTS, SLOW = {1: 20, 16: 64}, {1: 8, 16: 32}


def questions() -> list[str]:
    qs = []
    sets = [ROOT / "datasets" / "flywheel-docs-golden.json", SHARED / "datasets" / "mlflow-docs-golden.json"]
    for path in sets:
        if path.exists():
            qs += [
                i["input"]["question"]
                for i in json.loads(path.read_text())
                if i.get("metadata", {}).get("kind", "happy_path") in ("happy_path", "edge_case")
            ]
    return qs


async def load(url: str, bodies: list[dict], concurrency: int, total: int) -> dict[str, float]:
    """``total`` requests from ``concurrency`` clients, cycling through ``bodies``."""
    lat: list[float] = []
    errors, first_error = 0, ""
    counter = iter(range(total))
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def worker() -> None:
            nonlocal errors, first_error
            for n in counter:
                t = time.perf_counter()
                resp = await client.post(url, json=bodies[n % len(bodies)])
                lat.append((time.perf_counter() - t) * 1000)
                if resp.status_code != 200:
                    errors += 1
                    first_error = first_error or f"{resp.status_code} {resp.text[:200]}"

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {
        "p50_ms": round(pct(lat, 50), 1),
        "p95_ms": round(pct(lat, 95), 1),
        "per_s": round(total / wall, 2),
        "errors": errors,
        "n": total,
        "first_error": first_error,
    }


def serve(port: int, env: dict[str, str], experiment: str, unit_vectors: str) -> subprocess.Popen:
    return start(
        [sys.executable, "-m", "flywheel.serving"],
        f"http://127.0.0.1:{port}/health",
        {
            **env,
            "FLYWHEEL_AGENT_PORT": str(port),
            "FLYWHEEL_EXPERIMENT": experiment,
            "FLYWHEEL_UNIT_VECTORS": unit_vectors,
            "FLYWHEEL_SERVE_AGENT_CONFIG": json.dumps({"policy": "grounded"}),
        },
    )


def start_service(spec) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    """A stack service as `flywheel up` runs it (its command, environment, folder and priority),
    once it answers its health check (HTTP) or accepts connections (gRPC)."""
    import socket

    nice = spec.nice
    proc = subprocess.Popen(
        spec.command,
        env={**os.environ, **spec.env},
        cwd=spec.cwd or os.environ.get("TMPDIR", "/tmp"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    for _ in range(1200):
        try:
            if spec.health_url:
                httpx.get(spec.health_url, timeout=1).raise_for_status()
            else:
                socket.create_connection((spec.host, spec.port), timeout=1).close()
            return proc
        except (httpx.HTTPError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"{spec.name} did not start")


def stored_traces(db: str, experiment: str) -> int:
    """Traces of ``experiment`` the tracking server has stored complete: finished, root span present
    (answers, abstentions, refusals and searches have different span counts, so no count is assumed)."""
    import sqlite3

    exp = experiment_id(db, experiment)
    if exp is None:
        return 0
    with sqlite3.connect(db, timeout=30) as conn:
        row = conn.execute(
            """SELECT COUNT(*) FROM trace_info t WHERE t.experiment_id = ? AND t.status != 'IN_PROGRESS'
               AND EXISTS (SELECT 1 FROM spans s WHERE s.trace_id = t.request_id AND s.parent_span_id IS NULL)""",
            (exp,),
        ).fetchone()
    return int(row[0])


def drain(db: str, experiment: str, expected: int, limit_s: float = 240, stall_s: float = 30) -> int:
    """Wait until ``expected`` traces are stored or none arrives for ``stall_s``."""
    t0, last, changed = time.perf_counter(), -1, time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        n = stored_traces(db, experiment)
        if n >= expected:
            return n
        if n != last:
            last, changed = n, time.perf_counter()
        elif time.perf_counter() - changed > stall_s:
            return n
        time.sleep(1)
    return stored_traces(db, experiment)


def cold_ask(env: dict[str, str], question: str) -> list[float]:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run(
            [str(Path(sys.executable).parent / "flywheel"), "ask", question],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - t)
    return times


def main() -> None:
    procs: list[subprocess.Popen] = []
    tmp = tempfile.mkdtemp(prefix="bench-answers-")
    ports = {k: free_port() for k in ("mlflow", "milvus", "question_time", "stored")}
    settings = load_settings(
        data_dir=tmp, mlflow_port=ports["mlflow"], milvus_port=ports["milvus"], mlflow_tracking_uri=None
    )
    env = {k: v for k, v in settings.to_env().items() if v != "None"}
    env.update(
        FLYWHEEL_DATA_DIR=tmp,
        MLFLOW_TRACKING_URI=f"http://127.0.0.1:{ports['mlflow']}",
        MILVUS_URI=f"http://127.0.0.1:{ports['milvus']}",
    )
    try:
        for spec in embedded_specs(settings, ["mlflow", "milvus"]):
            procs.append(start_service(spec))
        sources = [str(ROOT / "docs")]
        if (SHARED / "corpora" / "mlflow-docs").exists():
            sources.append(str(SHARED / "corpora" / "mlflow-docs"))
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "flywheel.cli.main", "ingest", *sources],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        ingest_s = time.perf_counter() - t
        qs = questions()
        bodies = [{"input": [{"role": "user", "content": q}]} for q in qs]
        searches = [{"query": q} for q in qs]
        server = {
            "question_time": serve(ports["question_time"], env, "bench-answers-qt", "question_time"),
            "stored": serve(ports["stored"], env, "bench-answers-stored", "stored"),
        }
        procs.extend(server.values())
        url = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
        db = f"{tmp}/mlflow.db"
        arms = [
            ("question_time", "sentences embedded per question", url["question_time"] + "/responses", bodies),
            ("stored", "sentence vectors stored (default)", url["stored"] + "/responses", bodies),
            ("retrieval", "retrieval only, same server", url["stored"] + "/search", searches),
        ]
        experiments = {
            "question_time": "bench-answers-qt",
            "stored": "bench-answers-stored",
            "retrieval": "bench-answers-stored",
        }
        sent: dict[str, int] = {}
        # warm-up: every question once through each server (models loaded, caches as in steady state)
        for key, _, target, payload in arms:
            asyncio.run(load(target, payload, 2, len(payload)))
            exp = experiments[key]
            sent[exp] = sent.get(exp, 0) + len(payload)
        results: dict[int, dict[str, dict]] = {}
        rows = []
        for c in (1, 16):
            results[c] = {}
            for key, label, target, payload in arms:
                n = (SLOW if key == "question_time" else REQUESTS)[c]
                pid = server["question_time" if key == "question_time" else "stored"].pid
                cpu0 = tree_cpu_s(pid)
                r = asyncio.run(load(target, payload, c, n))
                r["server_cpu_ms_per_request"] = round((tree_cpu_s(pid) - cpu0) * 1000 / n, 2)
                exp = experiments[key]
                sent[exp] = sent.get(exp, 0) + n
                results[c][key] = r
                if r["errors"]:
                    print(f"{key} c={c}: {r['errors']} errors, first: {r['first_error']}")
                rows.append(
                    (
                        label,
                        str(c),
                        f"{r['p50_ms']}",
                        f"{r['p95_ms']}",
                        f"{r['per_s']}",
                        str(r["errors"]),
                        str(r["server_cpu_ms_per_request"]),
                    )
                )
        traces: dict[str, int] = {}
        for exp in sorted(set(experiments.values())):
            traces[exp] = drain(db, exp, sent[exp])
        rss = psutil.Process(server["stored"].pid).memory_info().rss / 2**20
        cold_env = {**env, "FLYWHEEL_AGENT_PORT": str(ports["stored"])}
        cold = cold_ask(cold_env, qs[0])
        c16 = results[16]
        summary = {
            "p50_ms_c1": results[1]["stored"]["p50_ms"],
            "p95_ms_c1": results[1]["stored"]["p95_ms"],
            "answers_per_s_c16": c16["stored"]["per_s"],
            "p50_ms_c16": c16["stored"]["p50_ms"],
            "speedup_vs_question_time_embedding_c16": round(
                c16["stored"]["per_s"] / c16["question_time"]["per_s"], 1
            ),
            "ratio_vs_retrieval_only_c16": round(c16["retrieval"]["per_s"] / c16["stored"]["per_s"], 2),
            "question_time_answers_per_s_c16": c16["question_time"]["per_s"],
            "retrieval_per_s_c16": c16["retrieval"]["per_s"],
            "traces_stored_fraction": round(sum(traces.values()) / max(1, sum(sent.values())), 4),
            "agent_rss_mb": round(rss, 1),
            "cold_ask_s": round(statistics.median(cold), 2),
            "errors": sum(r["errors"] for by in results.values() for r in by.values()),
        }
        print_table(
            "grounded answers through the agent server (real stack)",
            rows,
            ("arm", "clients", "p50 ms", "p95 ms", "per s", "errors", "server CPU ms/req"),
        )
        print(json.dumps(summary, indent=2))
        write_result(
            "answers",
            summary,
            {
                "results": results,
                "questions": len(qs),
                "index_sources": [Path(s).name for s in sources],
                "ingest_s": round(ingest_s, 1),
                "traces": {"sent": sent, "stored": traces},
                "cold_ask_s": [round(x, 2) for x in cold],
                "notes": "ratio_vs_retrieval_only_c16 = retrieval-only requests/s ÷ answers/s (≤ 1.5: an "
                "answer costs at most 1.5 searches); traces counted complete in the tracking server's store",
            },
        )
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 15)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)


if __name__ == "__main__":
    main()
