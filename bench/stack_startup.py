"""Cold `flywheel up` to all-healthy, and the memory of each service.

Baseline, in the same run: a stock `mlflow server` with its default settings (4 workers, job
runner on), which is what a user gets without flywheel's lean settings.
Writes bench/results/stack_startup.json (summary.up_seconds, summary.mlflow_rss_mb).
Targets: all healthy in <= 30 s; MLflow server <= 0.6 GB RSS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._util import free_port, print_table, write_result


def tree_rss_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def flywheel_cold_up() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "FLYWHEEL_DATA_DIR": tmp,
            "FLYWHEEL_MLFLOW_PORT": str(free_port()),
            "FLYWHEEL_LLM_PORT": str(free_port()),
            "FLYWHEEL_MILVUS_PORT": str(free_port()),
        }
        cmd = [sys.executable, "-m", "flywheel.cli.main"]
        t0 = time.perf_counter()
        subprocess.run([*cmd, "up"], env=env, check=True, capture_output=True)
        up_s = time.perf_counter() - t0
        time.sleep(2)  # let RSS settle after start-up
        import json

        rows = json.loads(
            subprocess.run(
                [*cmd, "status", "--json"], env=env, check=True, capture_output=True, text=True
            ).stdout
        )
        rss = {r["name"]: r["rss_mb"] for r in rows}
        nprocs = {r["name"]: 1 + len(psutil.Process(r["pid"]).children(recursive=True)) for r in rows}
        subprocess.run([*cmd, "down"], env=env, check=True, capture_output=True)
        return {
            "up_seconds": up_s,
            "mlflow_rss_mb": rss["mlflow"],
            "llm_rss_mb": rss["llm"],
            "milvus_rss_mb": rss["milvus"],
            "mlflow_processes": nprocs["mlflow"],
        }


def stock_mlflow() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                f"sqlite:///{tmp}/mlflow.db",
                "--artifacts-destination",
                f"{tmp}/artifacts",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while time.perf_counter() - t0 < 180:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
            up_s = time.perf_counter() - t0
            time.sleep(5)  # workers and the job runner finish starting after the first health answer
            rss = tree_rss_mb(proc.pid)
            nprocs = 1 + len(psutil.Process(proc.pid).children(recursive=True))
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(30)
        return {"up_seconds": up_s, "mlflow_rss_mb": rss, "mlflow_processes": nprocs}


def main() -> None:
    ours = [flywheel_cold_up() for _ in range(2)]
    base = stock_mlflow()
    best = min(ours, key=lambda r: r["up_seconds"])
    worst_up = max(r["up_seconds"] for r in ours)
    summary = {
        "up_seconds": round(worst_up, 2),
        "mlflow_rss_mb": round(max(r["mlflow_rss_mb"] for r in ours), 1),
        "llm_rss_mb": round(max(r["llm_rss_mb"] for r in ours), 1),
        "milvus_rss_mb": round(max(r["milvus_rss_mb"] for r in ours), 1),
        "baseline_stock_mlflow_up_seconds": round(base["up_seconds"], 2),
        "baseline_stock_mlflow_rss_mb": round(base["mlflow_rss_mb"], 1),
        "target_up_seconds": 30,
        "target_mlflow_rss_mb": 600,
        "meets_targets": worst_up <= 30 and max(r["mlflow_rss_mb"] for r in ours) <= 600,
    }
    print_table(
        "cold start to all-healthy",
        [
            (
                "flywheel up (MLflow + LLM + Milvus)",
                f"{worst_up:.1f} (best {best['up_seconds']:.1f})",
                f"{summary['mlflow_rss_mb']:.0f}",
                str(best["mlflow_processes"]),
                f"{summary['llm_rss_mb']:.0f}",
            ),
            (
                "stock mlflow server (baseline)",
                f"{base['up_seconds']:.1f}",
                f"{base['mlflow_rss_mb']:.0f}",
                str(base["mlflow_processes"]),
                "-",
            ),
        ],
        ("what", "seconds", "mlflow RSS MB", "mlflow procs", "llm RSS MB"),
    )
    path = write_result("stack_startup", summary, {"flywheel_runs": ours, "stock_mlflow": base})
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
