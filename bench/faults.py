"""Faults under load: the agent server keeps telling the truth while its dependencies fail.

The real embedded stack (MLflow tracking server, llama.cpp LLM server, Milvus Lite server) and the
real agent server run as processes on 127.0.0.1; the agent answers with the grounded policy plus an
LLM lead sentence (``serve_agent_config={"lead_sentence": true}``), so every answer needs the index
and the LLM, and every answer is a trace. 8 clients ask questions about the flywheel docs without
pause (honouring Retry-After), and one fault at a time is injected:

1. LLM frozen: SIGSTOP for 10 s, then SIGCONT
2. LLM killed (SIGKILL) and restarted
3. Milvus killed (SIGKILL) and restarted
4. tracking server killed (SIGKILL) and restarted

Then a soak: 50 clients for 60 s (bounded), with the agent server's and the LLM server's RSS before
and after.

Figures (``bench/results/faults.json``, ``summary``):
- ``unexpected_5xx``: answers with a 5xx that is not a 503 carrying a stable code and Retry-After,
  plus dropped connections (transport errors); target 0
- ``failed_after_recovery``: requests started more than 10 s after the dependency was healthy
  again that did not get a 200; target 0
- ``traces_lost``: 200 answers whose trace_id never reached the tracking server (checked in its
  SQLite store after the spool has drained); target 0
- ``ready_false_negatives``: seconds (1 s windows) in which every ``/ready`` poll said ready while
  most answers completing in that window failed; target 0
- ``recovery_s_max``: the longest time from "dependency healthy again" to the end of the last
  failed answer of that fault
- soak: ``soak_unexpected_5xx``, ``soak_empty_200``, ``soak_agent_rss_growth`` (fraction),
  ``soak_llm_rss_growth``, ``soak_traces_lost``

Run: ``.venv/bin/python bench/faults.py`` (about 6 minutes). ``BENCH_QUICK=1``: shorter phases.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import docs_stack, pct, print_table, temp_stack_settings, write_result  # noqa: E402
from flywheel.stack import Stack  # noqa: E402
from flywheel.stack._process import read_record  # noqa: E402

QUICK = bool(os.environ.get("BENCH_QUICK"))
STEADY_S = 8 if QUICK else 15
SOAK_S = 20 if QUICK else 60
CLIENTS, SOAK_CLIENTS = 8, 50
THINK_S = 5.0  # each fault-phase client reads its answer before asking again (the soak does not)
QUESTIONS = [
    "Which addresses does open_url refuse to fetch?",
    "How do I start the embedded stack?",
    "What does the gateway do when a provider fails?",
    "How is a new version promoted to champion?",
    "Which port does the agent server listen on?",
    "How do I ingest a folder of Markdown files?",
    "What does /ready check?",
    "How are traces exported by the agent server?",
]
KNOWN_503 = {"llm_unavailable", "index_unavailable", "dependency_unavailable", "unavailable"}


@dataclass
class Record:
    start: float
    end: float
    status: int
    code: str = ""
    retry_after: bool = False
    trace_id: str = ""
    nonempty: bool = False


@dataclass
class Run:
    records: list[Record] = field(default_factory=list)
    ready: list[tuple[float, bool]] = field(default_factory=list)
    stop: bool = False
    t0: float = 0.0


def pid_of(stack: Stack, name: str) -> int:
    record = read_record(stack.pid_file(name))
    assert record is not None, f"{name} is not running"
    return int(record.pid)


def tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def rss_mb(pid: int) -> float:
    return sum(p.memory_info().rss for p in tree(pid)) / 1e6


def kill_tree(pid: int) -> None:
    for p in tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


async def client(url: str, run: Run, i: int, until: float, think: float = 0.0) -> None:
    async with httpx.AsyncClient(timeout=120) as c:
        k = i
        while not run.stop and time.monotonic() < until:
            k += 1
            t0 = time.monotonic()
            try:
                r = await c.post(url + "/responses", json={"input": QUESTIONS[k % len(QUESTIONS)]})
            except httpx.HTTPError as exc:
                run.records.append(Record(t0, time.monotonic(), 0, type(exc).__name__))
                await asyncio.sleep(0.5)
                continue
            rec = Record(t0, time.monotonic(), r.status_code, retry_after="retry-after" in r.headers)
            body: dict[str, Any] = (
                r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
            )
            if r.status_code == 200:
                rec.trace_id = body.get("metadata", {}).get("trace_id", "")
                text = "".join(
                    part.get("text", "")
                    for item in body.get("output", [])
                    for part in item.get("content", [])
                )
                rec.nonempty = bool(text.strip())
            else:
                rec.code = (body.get("error") or {}).get("code", "")
            run.records.append(rec)
            if r.status_code in (429, 503):
                await asyncio.sleep(float(r.headers.get("retry-after", 1)))
            elif think:
                await asyncio.sleep(think)


async def poll_ready(url: str, run: Run) -> None:
    async with httpx.AsyncClient(timeout=5) as c:
        while not run.stop:
            try:
                ok = (await c.get(url + "/ready")).status_code == 200
            except httpx.HTTPError:
                ok = False
            run.ready.append((time.monotonic(), ok))
            await asyncio.sleep(0.5)


async def wait_healthy(stack: Stack, name: str, limit: float = 120) -> float:
    from flywheel.stack._manager import check_spec

    spec = stack.specs([name])[0]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check_spec, spec):
            return time.monotonic()
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{name} did not come back")


async def fault(stack: Stack, name: str) -> dict[str, float]:
    """Inject one fault; returns when it began and when the dependency was healthy again."""
    t0 = time.monotonic()
    if name == "llm_sigstop_10s":
        procs = tree(pid_of(stack, "llm"))
        for p in procs:
            p.send_signal(signal.SIGSTOP)
        await asyncio.sleep(10)
        for p in procs:
            p.send_signal(signal.SIGCONT)
        healthy = await wait_healthy(stack, "llm")
    else:
        service = {"llm_kill": "llm", "milvus_kill": "milvus", "tracking_kill": "mlflow"}[name]
        kill_tree(pid_of(stack, service))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(stack.up, [service])
        healthy = await wait_healthy(stack, service)
    return {"start": t0, "healthy": healthy}


def stored_trace_ids(db: Path) -> set[str]:
    with sqlite3.connect(db, timeout=30) as conn:
        return {row[0] for row in conn.execute("SELECT request_id FROM trace_info")}


async def spool_drained(url: str, limit: float = 120) -> float:
    t0 = time.monotonic()
    async with httpx.AsyncClient(timeout=10) as c:
        while time.monotonic() - t0 < limit:
            try:
                body = (await c.get(url + "/ready")).json()
                if not (body.get("spool") or {}).get("spool_batches"):
                    await asyncio.sleep(3)  # the last OTLP batch (1 s schedule) and the server's write
                    return time.monotonic() - t0
            except httpx.HTTPError:
                pass
            await asyncio.sleep(1)
    return time.monotonic() - t0


def unexpected(r: Record) -> bool:
    if r.status == 0:
        return True  # a dropped connection
    if r.status < 500:
        return False
    return not (r.status == 503 and r.code in KNOWN_503 and r.retry_after)


def false_ready_seconds(run: Run, t_from: float, t_to: float) -> int:
    n = 0
    t = t_from
    while t < t_to:
        polls = [ok for (pt, ok) in run.ready if t <= pt < t + 1]
        # answers that failed for a dependency; load shedding (429, 503 "unavailable") is not one
        done = [r for r in run.records if t <= r.end < t + 1 and r.status != 429 and r.code != "unavailable"]
        failed = [r for r in done if r.status != 200]
        if polls and all(polls) and done and len(failed) > len(done) / 2:
            n += 1
        t += 1
    return n


async def faults_phase(stack: Stack, url: str) -> tuple[Run, list[dict[str, Any]]]:
    run = Run()
    poller = asyncio.create_task(poll_ready(url, run))
    clients = [asyncio.create_task(client(url, run, i, float("inf"), THINK_S)) for i in range(CLIENTS)]
    events = []
    t_begin = time.monotonic()
    await asyncio.sleep(STEADY_S)
    for name in ("llm_sigstop_10s", "llm_kill", "milvus_kill", "tracking_kill"):
        print(f"  fault: {name}", flush=True)
        ev = await fault(stack, name)
        await asyncio.sleep(STEADY_S)
        events.append({"name": name, **ev, "end": time.monotonic()})
    run.stop = True
    await asyncio.gather(*clients, poller)
    for ev in events:
        recs = [r for r in run.records if ev["start"] <= r.end < ev["end"]]  # ended in this phase
        failed_late = [r for r in recs if r.start > ev["healthy"] + 10 and r.status != 200]
        failures = [r for r in recs if r.status not in (200, 429)]
        last_fail = max((r.end for r in failures), default=ev["healthy"])
        ev.update(
            requests=len(recs),
            ok_ended_while_down=sum(r.status == 200 and ev["start"] <= r.end < ev["healthy"] for r in recs),
            p50_s=round(pct([r.end - r.start for r in recs if r.status == 200], 50), 2),
            ok=sum(r.status == 200 for r in recs),
            failed=len(failures),
            codes=sorted({f"{r.status} {r.code}".strip() for r in failures}),
            unexpected_5xx=sum(unexpected(r) for r in recs),
            failed_after_recovery=len(failed_late),
            recovery_s=round(max(0.0, last_fail - ev["healthy"]), 2),
            down_s=round(ev["healthy"] - ev["start"], 2),
            ready_false_negatives=false_ready_seconds(run, ev["start"], ev["end"]),
        )
    for ev in events:
        for k in ("start", "healthy", "end"):
            ev[k] = round(ev[k] - t_begin, 2)
    run.t0 = t_begin
    return run, events


async def soak_phase(stack: Stack, url: str) -> tuple[Run, dict[str, Any]]:
    agent_pid, llm_pid = pid_of(stack, "agent"), pid_of(stack, "llm")
    run = Run()
    llm_idle = rss_mb(llm_pid)  # restarted during the faults phase: little of its cache is used yet
    # warm-up at full concurrency, so that growth is measured after the first-use allocations
    warm = Run()
    until = time.monotonic() + 10
    await asyncio.gather(*(client(url, warm, i, until) for i in range(SOAK_CLIENTS)))
    agent0, llm0 = rss_mb(agent_pid), rss_mb(llm_pid)
    until = time.monotonic() + SOAK_S
    await asyncio.gather(*(client(url, run, i, until) for i in range(SOAK_CLIENTS)))
    agent1, llm1 = rss_mb(agent_pid), rss_mb(llm_pid)
    statuses: dict[str, int] = {}
    for r in run.records:
        key = f"{r.status} {r.code}".strip()
        statuses[key] = statuses.get(key, 0) + 1
    oks = [r for r in run.records if r.status == 200]
    return run, {
        "clients": SOAK_CLIENTS,
        "seconds": SOAK_S,
        "requests": len(run.records),
        "statuses": statuses,
        "answers": len(oks),
        "empty_200": sum(not r.nonempty for r in oks),
        "unexpected_5xx": sum(unexpected(r) for r in run.records),
        "p50_ms": round(pct([(r.end - r.start) * 1000 for r in oks], 50), 1),
        "agent_rss_mb": [round(agent0, 1), round(agent1, 1)],
        "llm_rss_mb": [round(llm0, 1), round(llm1, 1)],
        "agent_rss_growth": round((agent1 - agent0) / agent0, 4),
        "llm_rss_growth": round((llm1 - llm0) / llm0, 4),
        "llm_rss_idle_mb": round(llm_idle, 1),
        "llm_rss_growth_from_idle": round((llm1 - llm_idle) / llm_idle, 4),
    }


async def main_async(stack: Stack, url: str, db: Path) -> dict[str, Any]:
    print("faults under 8 clients …", flush=True)
    fault_run, events = await faults_phase(stack, url)
    print(f"soak: {SOAK_CLIENTS} clients × {SOAK_S} s …", flush=True)
    soak_run, soak = await soak_phase(stack, url)
    drained_s = await spool_drained(url)
    stored = stored_trace_ids(db)
    lost_f = [r.trace_id for r in fault_run.records if r.status == 200 and r.trace_id not in stored]
    lost_s = [r.trace_id for r in soak_run.records if r.status == 200 and r.trace_id not in stored]
    async with httpx.AsyncClient(timeout=10) as c:
        ready = (await c.get(url + "/ready")).json()
        metrics = (await c.get(url + "/metrics")).text
    soak["traces_lost"] = len(lost_s)
    return {
        "events": events,
        "soak": soak,
        "traces": {
            "answers_during_faults": sum(r.status == 200 for r in fault_run.records),
            "lost_during_faults": len(lost_f),
            "lost_examples": (lost_f + lost_s)[:5],
            "spool_drain_s": round(drained_s, 1),
            "spool": ready.get("spool"),
        },
        "fault_records": [  # every request of the faults phase: start, end (s), status, code
            [round(r.start - fault_run.t0, 2), round(r.end - fault_run.t0, 2), r.status, r.code]
            for r in fault_run.records
        ],
        "ready_polls_false": [round(t - fault_run.t0, 1) for t, ok in fault_run.ready if not ok],
        "metrics_sample": [line for line in metrics.splitlines() if line.startswith("flywheel_")][:40],
    }


def main() -> None:
    tmp, settings = temp_stack_settings(
        "fw-faults-",
        collection="faults_docs",
        experiment="faults-bench",
        serve_agent_config={"lead_sentence": True, "max_tokens": 48},
    )
    t0 = time.monotonic()
    with docs_stack(settings) as url:
        details = asyncio.run(main_async(Stack(settings), url, tmp / "mlflow.db"))
    events, soak = details["events"], details["soak"]
    summary = {
        "unexpected_5xx": sum(e["unexpected_5xx"] for e in events),
        "failed_after_recovery": sum(e["failed_after_recovery"] for e in events),
        "traces_lost": details["traces"]["lost_during_faults"],
        "ready_false_negatives": sum(e["ready_false_negatives"] for e in events),
        "recovery_s_max": max(e["recovery_s"] for e in events),
        "soak_unexpected_5xx": soak["unexpected_5xx"],
        "soak_empty_200": soak["empty_200"],
        "soak_agent_rss_growth": soak["agent_rss_growth"],
        "soak_llm_rss_growth": soak["llm_rss_growth"],
        "soak_llm_rss_growth_from_idle": soak["llm_rss_growth_from_idle"],
        "soak_traces_lost": soak["traces_lost"],
        "soak_answers": soak["answers"],
        "quick": QUICK,
        "wall_s": round(time.monotonic() - t0, 1),
    }
    print_table(
        "faults (8 clients)",
        [
            (
                e["name"],
                str(e["requests"]),
                str(e["failed"]),
                ", ".join(e["codes"]) or "-",
                str(e["unexpected_5xx"]),
                str(e["failed_after_recovery"]),
                str(e["ready_false_negatives"]),
                f"{e['recovery_s']}",
            )
            for e in events
        ],
        ("fault", "requests", "failed", "codes", "unexp.5xx", "failed>10s", "ready-FN s", "recovery s"),
    )
    print(f"\nsoak: {soak}")
    print(f"traces: {details['traces']}")
    path = write_result("faults", summary, details)
    print(f"\nsummary: {summary}\nwrote {path}")


if __name__ == "__main__":
    main()
