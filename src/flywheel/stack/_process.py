"""Child processes of the stack: start detached with a PID file and a log, stop the whole tree."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

__all__ = ["ProcessRecord", "is_alive", "read_record", "spawn", "stop_tree"]


@dataclass
class ProcessRecord:
    """What a PID file holds: enough to find, check and stop exactly what we started."""

    name: str
    pid: int
    create_time: float
    port: int
    url: str
    log: str
    command: list[str]

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))


def read_record(path: Path) -> ProcessRecord | None:
    try:
        return ProcessRecord(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def is_alive(record: ProcessRecord) -> bool:
    """The recorded process still runs (and is the same process, not a reused PID)."""
    try:
        proc = psutil.Process(record.pid)
        return abs(proc.create_time() - record.create_time) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def spawn(
    name: str, command: list[str], env: dict[str, str], log_path: Path, cwd: Path, nice: int = 0
) -> psutil.Process:
    """Start ``command`` in its own session (so its children can be stopped with it), ``nice`` steps
    below normal CPU priority (inherited by the processes it starts)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(
            f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}: {' '.join(command)}\n".encode()
        )
        log.flush()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # a service logs to its own file as it normally would: the CLI's quiet-terminal switch is not inherited
            env={**{k: v for k, v in os.environ.items() if k != "MLFLOW_CONFIGURE_LOGGING"}, **env},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=(lambda: os.nice(nice)) if nice > 0 else None,
        )
    return psutil.Process(proc.pid)


def stop_tree(record: ProcessRecord, timeout: float = 15.0) -> bool:
    """SIGTERM the process and every descendant, SIGKILL what is left after ``timeout``."""
    if not is_alive(record):
        return False
    root = psutil.Process(record.pid)
    procs = [root, *root.children(recursive=True)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(record.pid, signal.SIGTERM)  # the session leader's group: what we started
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return True
