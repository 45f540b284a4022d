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

__all__ = ["ProcessRecord", "is_alive", "read_record", "same_process", "spawn", "start_ticks", "stop_tree"]

# A process is identified by its PID and its start. psutil's start time is the kernel's boot
# time — a whole number of seconds (/proc/stat btime) that moves whenever the wall clock is
# stepped or slewed (NTP, a VM's clock sync; measured here: 17 s in half an hour) — plus the
# process's ticks since boot. So on Linux the start is recorded as those ticks
# (/proc/PID/stat, field 22), which no clock change moves; elsewhere, and for records written
# before, the wall-clock start time with a tolerance, or a whole-second shift with the same command.
# (A 1 s tolerance had judged live processes gone: stacks never stopped, healthy runtimes called dead.)
START_TOLERANCE_S = 2.5


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (Linux), or None where that is not known."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
        return int(raw[raw.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


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
    start_ticks: int | None = None  # see START_TOLERANCE_S; absent in records written before

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))


def read_record(path: Path) -> ProcessRecord | None:
    try:
        return ProcessRecord(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def same_process(
    pid: int, create_time: float, ticks: int | None = None, command: list[str] | None = None
) -> psutil.Process | None:
    """The process ``pid`` if it is the one that started then (not a reused PID) and has not
    exited; else None. ``ticks`` (from :func:`start_ticks`) decides when known; else the start time
    within :data:`START_TOLERANCE_S`, or shifted by whole seconds (a boot-time step) with the same
    ``command``."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        now_ticks = start_ticks(pid) if ticks is not None else None
        if now_ticks is not None:
            return proc if now_ticks == ticks else None
        shift = proc.create_time() - create_time
        if abs(shift) < START_TOLERANCE_S:
            return proc
        if command and abs(shift - round(shift)) < 0.02 and proc.cmdline() == list(command):
            return proc
    except psutil.Error:
        pass
    return None


def is_alive(record: ProcessRecord) -> bool:
    """The recorded process still runs (and is the same process, not a reused PID)."""
    return same_process(record.pid, record.create_time, record.start_ticks, record.command) is not None


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
