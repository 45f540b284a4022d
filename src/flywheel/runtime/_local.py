"""The local runtime backend: an agent server child process per runtime, found again by its record."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import psutil

from flywheel.config import Settings
from flywheel.errors import ServiceStartError
from flywheel.runtime._base import Runtime, RuntimeBackend, runtime_name
from flywheel.stack import ProcessRecord, free_port, spawn, start_ticks, stop_tree

__all__ = ["LocalRuntimes"]


class LocalRuntimes(RuntimeBackend):
    """Agent servers as child processes of this machine (``data/runtimes/<name>.json``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.data_path / "runtimes"

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.json"

    def deploy(
        self,
        model_uri: str | None = None,
        config: dict[str, Any] | None = None,
        purpose: str = "manual",
        name: str | None = None,
        timeout: float = 180.0,
    ) -> Runtime:
        """Start an agent server for ``model_uri`` (models:/NAME@ALIAS or /VERSION) or a local
        AgentConfig (``config``: its fields that differ from the default); wait until /ready."""
        name = runtime_name(self.settings, name, purpose)
        port = free_port(self.settings.host)
        child = self.settings.model_copy(
            update={"agent_port": port, "serve_model": model_uri, "serve_agent_config": config or {}}
        )
        env = child.to_env()
        if not model_uri:
            env.pop("FLYWHEEL_SERVE_MODEL", None)
        self.dir.mkdir(parents=True, exist_ok=True)
        log = self.dir / f"{name}.log"
        proc = spawn(name, [sys.executable, "-m", "flywheel.serving"], env, log, cwd=Path.cwd())
        url = f"http://{self.settings.host}:{port}"
        record = ProcessRecord(
            name, proc.pid, proc.create_time(), port, url, str(log), proc.cmdline(), start_ticks(proc.pid)
        )
        me = psutil.Process()
        owner = {"pid": float(me.pid), "create_time": me.create_time()}
        if (ticks := start_ticks(me.pid)) is not None:
            owner["start_ticks"] = float(ticks)
        runtime = Runtime(name, url, purpose, model_uri, config or {}, asdict(record), time.time(), owner)
        self._path(name).write_text(json.dumps(asdict(runtime), indent=2))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not runtime.alive():
                self.delete(name)
                raise ServiceStartError(service=f"runtime {name}", timeout=0, log=log, detail=_tail(log))
            try:
                if httpx.get(url + "/ready", timeout=3).status_code == 200:
                    return runtime
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.delete(name)
        raise ServiceStartError(service=f"runtime {name}", timeout=timeout, log=log, detail=_tail(log))

    def get(self, name: str) -> Runtime | None:
        try:
            return Runtime(**json.loads(self._path(name).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def all(self) -> list[Runtime]:
        out = []
        for path in sorted(self.dir.glob("*.json")):
            runtime = self.get(path.stem)
            if runtime is not None:
                out.append(runtime)
        return out

    def delete(self, name: str) -> bool:
        """Stop the runtime's process tree and forget it; True when something was running."""
        path = self._path(name)
        runtime = self.get(name)
        stopped = runtime is not None and stop_tree(ProcessRecord(**runtime.record))
        path.unlink(missing_ok=True)
        return stopped

    def gc(self, purposes: tuple[str, ...] = ("gate", "tune")) -> list[str]:
        """Remove runtimes a gate or tune left behind: killed (e.g. kill -9) before its clean-up ran.
        A runtime whose owner still runs is in use (another gate or tune) and is left alone; one
        whose process died is forgotten too."""
        removed: list[str] = []
        for runtime in self.all():
            if (runtime.purpose in purposes and runtime.orphaned()) or not runtime.alive():
                self.delete(runtime.name)
                removed.append(runtime.name)
        return removed


def _tail(log: Path, lines: int = 8) -> str:
    try:
        return "Last log lines:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
