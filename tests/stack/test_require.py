"""Fail fast: with the stack down, commands that need a service stop within seconds with a clear,
bilingual error that names the service, its URL and `flywheel up`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flywheel.config import load_settings
from flywheel.errors import ServiceUnavailableError
from flywheel.stack import require
from tests.conftest import free_port


@pytest.mark.parametrize("need", ["tracking", "llm"])
def test_require_fails_fast_and_names_the_service(tmp_path: Path, need: str) -> None:
    cfg = load_settings(data_dir=tmp_path, mlflow_port=free_port(), llm_port=free_port())
    t0 = time.monotonic()
    with pytest.raises(ServiceUnavailableError) as err:
        require(cfg, need)
    assert time.monotonic() - t0 < 4
    en, ja = err.value.render("en"), err.value.render("ja")
    assert "flywheel up" in en and "flywheel up" in ja
    assert str(cfg.mlflow_port if need == "tracking" else cfg.llm_port) in en
    assert "接続できません" in ja and "This" not in ja.split("対処")[0]  # the cause is Japanese too


def test_a_local_index_file_needs_no_server(tmp_path: Path) -> None:
    require(load_settings(data_dir=tmp_path, milvus_port=free_port()), "index")


@pytest.mark.parametrize(
    "args",
    [["prompts", "list"], ["serve", "--model", "models:/x@y"], ["alias", "champion", "1"], ["log-model"]],
    ids=lambda a: " ".join(a[:2]),
)
def test_commands_with_the_stack_down_stop_quickly(tmp_path: Path, args: list[str]) -> None:
    env = {
        **os.environ,
        "FLYWHEEL_DATA_DIR": str(tmp_path),
        "FLYWHEEL_MLFLOW_PORT": str(free_port()),
        "FLYWHEEL_LLM_PORT": str(free_port()),
        "FLYWHEEL_LANG": "en",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "flywheel.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "is not reachable" in out and "flywheel up" in out and "Traceback" not in out
    assert elapsed < 30  # interpreter start and imports included; a retry storm took minutes
