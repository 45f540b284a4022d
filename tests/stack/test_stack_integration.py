"""The real embedded stack: `flywheel up` → MLflow REST + LLM (incl. concurrent streams) → `flywheel down`."""

from __future__ import annotations

import concurrent.futures as cf
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from flywheel.stack import port_is_free
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def _flywheel(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flywheel.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _stream(url: str, n: int) -> str:
    body = {
        "model": "SmolLM2-135M-Instruct",
        "messages": [{"role": "user", "content": f"Count from 1 to {n + 3} in words."}],
        "max_tokens": 24,
        "stream": True,
    }
    text = []
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as resp:
        resp.raise_for_status()
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                delta = json.loads(line[6:])["choices"][0]["delta"]
                text.append(delta.get("content") or "")
    return "".join(text)


def test_up_serves_mlflow_and_llm_then_down_leaves_nothing(tmp_path: Path) -> None:
    ports = {
        "FLYWHEEL_MLFLOW_PORT": free_port(),
        "FLYWHEEL_LLM_PORT": free_port(),
        "FLYWHEEL_MILVUS_PORT": free_port(),
    }
    env = {**os.environ, "FLYWHEEL_DATA_DIR": str(tmp_path / "data"), **{k: str(v) for k, v in ports.items()}}
    up = _flywheel(["up"], env)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        records = [json.loads(p.read_text()) for p in (tmp_path / "data" / "run").glob("*.json")]
        assert {r["name"] for r in records} == {"mlflow", "llm", "milvus"}
        pids = [r["pid"] for r in records]
        children = [c.pid for pid in pids for c in psutil.Process(pid).children(recursive=True)]
        # trace ingest is background work: the tracking server (and its worker) run at lower priority
        mlflow_pid = next(r["pid"] for r in records if r["name"] == "mlflow")
        assert {p.nice() for p in [psutil.Process(mlflow_pid), *psutil.Process(mlflow_pid).children()]} == {5}
        assert all(psutil.Process(r["pid"]).nice() == 0 for r in records if r["name"] != "mlflow")

        # `up` again is a no-op: same PIDs, no duplicates
        again = _flywheel(["up"], env)
        assert again.returncode == 0 and "already running" in again.stdout
        assert sorted(
            json.loads(p.read_text())["pid"] for p in (tmp_path / "data" / "run").glob("*.json")
        ) == sorted(pids)

        # MLflow REST API answers
        mlflow_url = f"http://127.0.0.1:{ports['FLYWHEEL_MLFLOW_PORT']}"
        resp = httpx.post(
            mlflow_url + "/api/2.0/mlflow/experiments/search", json={"max_results": 5}, timeout=30
        )
        assert resp.status_code == 200 and "experiments" in resp.json()

        # the LLM returns text, and 4 concurrent streams all finish with content
        llm_url = f"http://127.0.0.1:{ports['FLYWHEEL_LLM_PORT']}"
        reply = httpx.post(
            llm_url + "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16},
            timeout=60,
        ).json()
        assert reply["choices"][0]["message"]["content"].strip()
        with cf.ThreadPoolExecutor(4) as pool:
            outputs = list(pool.map(lambda n: _stream(llm_url, n), range(4)))
        assert len(outputs) == 4 and all(o.strip() for o in outputs), outputs

        status = _flywheel(["status", "--json"], env)
        states = {row["name"]: row["state"] for row in json.loads(status.stdout)}
        assert states == {
            "mlflow": "healthy",
            "llm": "healthy",
            "milvus": "healthy",
            "agent": "stopped",
            "gateway": "stopped",
        }
    finally:
        down = _flywheel(["down"], env)
    assert down.returncode == 0, down.stderr
    for pid in pids + children:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    for port in ports.values():
        assert port_is_free("127.0.0.1", port)
    assert not list((tmp_path / "data" / "run").glob("*.json"))
