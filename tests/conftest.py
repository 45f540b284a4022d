"""Shared fixtures: every test runs in a clean environment and a temporary folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flywheel.stack._ports import free_port as _free_port

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

_KEEP = {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "SSL_CERT_FILE", "CI"}
_OURS = ("FLYWHEEL_", "OPENAI_", "EXA_", "LLM_", "EMBEDDING_", "MLFLOW_", "MILVUS_", "OTEL_", "LANGFUSE_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No flywheel/provider variables from the developer's shell; cwd is a fresh folder."""
    for key in list(os.environ):
        if key.startswith(_OURS) and key not in _KEEP:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FLYWHEEL_LANG", "en")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.chdir(tmp_path)
    return tmp_path


free_port = _free_port  # tests import it from here


def shared_or_skip(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared corpora/datasets live beside the project (../shared)")
    return path


DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The real embedded stack (MLflow, LLM, Milvus) on free ports, with the user guide ingested."""
    from flywheel.config import load_settings
    from flywheel.knowledge import IngestOptions, KnowledgeBase, ingest
    from flywheel.stack import Stack

    data = tmp_path_factory.mktemp("stack")
    settings = load_settings(
        data_dir=data,
        mlflow_port=free_port(),
        llm_port=free_port(),
        milvus_port=free_port(),
        agent_port=free_port(),
        experiment="integration",
    )
    stack = Stack(settings)
    stack.up()
    try:
        ingest(settings, IngestOptions([str(DOCS)]), kb=KnowledgeBase(settings))
        yield settings
    finally:
        stack.down()


_EXIT_STATUS: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _EXIT_STATUS.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave as soon as pytest is done: MLflow's at-exit callback would otherwise flush traces still
    queued for tracking servers the tests have already stopped, retrying each with urllib3 backoff
    (measured: over 15 minutes after the last test). Every report has been written by now."""
    if _EXIT_STATUS:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS[-1])
