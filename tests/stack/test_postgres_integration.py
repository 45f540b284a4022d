"""MLflow on PostgreSQL, for real: a local PostgreSQL server, the MLflow tracking server on it, and
the log → register → serve → trace path of the agent against it (the at-scale store of
deploy/k8s/tracking). Skipped with a reason when PostgreSQL is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from flywheel.config import Settings
from tests.conftest import free_port
from tests.engines import postgres_missing, postgres_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    missing = postgres_missing()
    if missing:
        pytest.skip(missing)
    with postgres_server(("mlflow",)) as base:
        yield base + "/mlflow"


@pytest.fixture(scope="module")
def mlflow_on_postgres(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    artifacts = tmp_path_factory.mktemp("pg-artifacts")
    port = free_port()
    log = open(artifacts / "mlflow.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            postgres,
            "--artifacts-destination",
            str(artifacts),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(
                    "mlflow server on PostgreSQL exited: " + (artifacts / "mlflow.log").read_text()[-1500:]
                )
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_log_register_serve_and_trace_on_postgres(
    stack: Settings, mlflow_on_postgres: str, postgres: str
) -> None:
    import mlflow
    import psycopg

    from flywheel.agent import AgentConfig
    from flywheel.registry import log_agent
    from flywheel.runtime import LocalRuntimes

    # everything else (the LLM, the index) is the embedded stack's; only the tracking store changes
    settings = stack.model_copy(update={"mlflow_tracking_uri": mlflow_on_postgres, "experiment": "pg-it"})
    logged = log_agent(settings, AgentConfig(policy="grounded"), name="pg-agent", alias="champion")
    runtimes = LocalRuntimes(settings)
    rt = runtimes.deploy("models:/pg-agent@champion", purpose="manual", name="pg-it-agent")
    mlflow.set_tracking_uri(mlflow_on_postgres)
    try:
        r = httpx.post(
            rt.url + "/responses", json={"input": "How do I start the embedded stack?"}, timeout=120
        )
        assert r.status_code == 200, r.text
        meta = r.json()["metadata"]
        assert meta["registered_model.version"] == str(logged.version)
        trace_id = meta["trace_id"]
        # the server ships traces in batches (the root span, which carries the tags, last)
        deadline = time.monotonic() + 90
        trace = None
        while time.monotonic() < deadline:
            try:
                trace = mlflow.get_trace(trace_id)
            except Exception:
                trace = None
            if trace is not None and "registered_model.name" in trace.info.tags:
                break
            time.sleep(1)
    finally:
        runtimes.delete(rt.name)
    assert trace is not None, "the served request's trace never reached the PostgreSQL-backed server"
    assert trace.info.tags.get("registered_model.name") == "pg-agent", trace.info.tags
    # and it really is PostgreSQL that holds them
    with psycopg.connect(postgres) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM model_versions WHERE name = 'pg-agent'")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM trace_info WHERE request_id = %s", (trace_id,))
        assert cur.fetchone()[0] == 1


def test_the_conversation_store_on_postgres(postgres: str) -> None:
    """Replicas share conversations through PostgreSQL: two stores (two replicas) on one database."""
    from flywheel.agent._threads import SQLStore

    replica_a, replica_b = SQLStore(postgres, max_threads=100), SQLStore(postgres, max_threads=100)
    replica_a.remember("pg-thread", "What port?", "5010.", keep=6)
    replica_a.link("resp_pg", "pg-thread")
    assert replica_b.thread_of("resp_pg") == "pg-thread"
    assert replica_b.history("pg-thread") == [("user", "What port?"), ("assistant", "5010.")]
    for i in range(150):
        replica_b.remember(f"t{i}", "q", "a", keep=2)
    replica_b.prune()
    assert replica_a.history("t0") == [] and replica_a.history("t149")
