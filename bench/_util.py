"""Helpers shared by the benchmarks: free ports, percentiles, writing results/NAME.json, a table."""

from __future__ import annotations

import contextlib
import json
import platform
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flywheel.stack._ports import free_port
from flywheel.tracking import git_commit

RESULTS = Path(__file__).resolve().parent / "results"


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and its children (a server's workers); 0 when gone."""
    import psutil

    total = 0.0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system
    return total


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


def write_result(name: str, summary: dict[str, Any], details: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {
        "name": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "commit": git_commit(),
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "summary": summary,
        "details": details,
    }
    path.write_text(json.dumps(payload, indent=2))
    return path


def print_table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)))


def temp_stack_settings(prefix: str, **overrides: Any) -> tuple[Path, Any]:
    """A fresh data folder and settings with free ports for every service (benches run beside a
    developer's own stack without touching it)."""
    import tempfile

    from flywheel.config import load_settings

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    ports = {k: free_port() for k in ("mlflow_port", "llm_port", "milvus_port", "agent_port")}
    return tmp, load_settings(data_dir=tmp, **ports, **overrides)


@contextlib.contextmanager
def docs_stack(settings: Any, agent: bool = True) -> Iterator[str]:
    """The embedded stack of ``settings`` with the user guide ingested (and the agent server);
    yields the agent server's URL; always stopped."""
    from flywheel.knowledge import IngestOptions, ingest
    from flywheel.stack import Stack

    stack = Stack(settings)
    try:
        print(f"starting the embedded stack in {settings.data_path} …", flush=True)
        stack.up(["mlflow", "milvus", "llm"])
        ingest(settings, IngestOptions([str(RESULTS.parents[1] / "docs")]))
        if agent:
            stack.up(["agent"])
        yield f"http://{settings.host}:{settings.agent_port}"
    finally:
        stack.down()
