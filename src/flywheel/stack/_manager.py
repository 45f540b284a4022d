"""The embedded stack as one object: up (idempotent), down (exactly what up started), status, logs."""

from __future__ import annotations

import concurrent.futures as cf
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from flywheel.config import Settings
from flywheel.errors import FlywheelError, PortInUseError, ServiceStartError
from flywheel.stack._ports import port_holder, port_is_free
from flywheel.stack._process import ProcessRecord, is_alive, read_record, spawn, start_ticks, stop_tree
from flywheel.stack._services import SERVICE_BUILDERS, ServiceSpec, embedded_specs

__all__ = ["ServiceStatus", "Stack", "check_health"]


@dataclass
class ServiceStatus:
    name: str
    url: str
    pid: int | None
    state: str  # healthy | starting | unhealthy | stopped | external
    detail: str = ""
    rss_mb: float | None = None


def check_health(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def check_spec(spec: ServiceSpec) -> bool:
    """HTTP health endpoint when the service has one, else a TCP connect."""
    if spec.health_url:
        return check_health(spec.health_url)
    try:
        with socket.create_connection((spec.host, spec.port), timeout=1.0):
            return True
    except OSError:
        return False


class Stack:
    """Start, stop and inspect the embedded services of one data folder."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data = settings.data_path
        self.run_dir = self.data / "run"
        self.log_dir = self.data / "logs"

    # -- paths
    def pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def log_file(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def specs(self, names: list[str] | None = None) -> list[ServiceSpec]:
        if names:
            unknown = [n for n in names if n not in SERVICE_BUILDERS]
            if unknown:
                raise FlywheelError("unknown_service", name=unknown[0], known=", ".join(SERVICE_BUILDERS))
        return embedded_specs(self.settings, names)

    # -- up
    def up(
        self,
        names: list[str] | None = None,
        on_event: Callable[[str, str], None] = lambda name, event: None,
    ) -> list[ServiceStatus]:
        """Start what is not running, then wait until every service answers its health check."""
        specs = self.specs(names)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started: list[ServiceSpec] = []
        # Check every port before starting anything, so a clash leaves nothing half-started.
        to_start = []
        for spec in specs:
            record = read_record(self.pid_file(spec.name))
            if record and is_alive(record):
                on_event(spec.name, "already running")
                continue
            if not port_is_free(spec.host, spec.port):
                pid, holder = port_holder(spec.port)
                raise PortInUseError(
                    service=spec.name,
                    host=spec.host,
                    port=spec.port,
                    holder=holder,
                    pid=pid or "<pid>",
                    env_key=spec.port_env_key,
                )
            to_start.append(spec)
        for spec in to_start:
            proc = spawn(
                spec.name,
                spec.command,
                spec.env,
                self.log_file(spec.name),
                cwd=Path(spec.cwd) if spec.cwd else self.data,
                nice=spec.nice,
            )
            ProcessRecord(
                name=spec.name,
                pid=proc.pid,
                create_time=proc.create_time(),
                port=spec.port,
                url=spec.url,
                log=str(self.log_file(spec.name)),
                command=spec.command,
                start_ticks=start_ticks(proc.pid),
            ).save(self.pid_file(spec.name))
            started.append(spec)
            on_event(spec.name, "starting")
        try:
            with cf.ThreadPoolExecutor(max_workers=max(1, len(specs))) as pool:
                list(pool.map(lambda s: self._wait_healthy(s, on_event), specs))
        except FlywheelError:
            for spec in started:  # leave nothing half-started behind
                self._stop_one(spec.name)
            raise
        return self.status(names)

    def _wait_healthy(self, spec: ServiceSpec, on_event: Callable[[str, str], None]) -> None:
        deadline = time.monotonic() + self.settings.start_timeout
        record = read_record(self.pid_file(spec.name))
        while time.monotonic() < deadline:
            if check_spec(spec):
                on_event(spec.name, "healthy")
                return
            if record and not is_alive(record):
                raise ServiceStartError(
                    service=spec.name,
                    timeout=0,
                    log=self.log_file(spec.name),
                    detail="The process exited during start-up. Last log lines:\n" + self.tail(spec.name, 8),
                )
            time.sleep(0.25)
        raise ServiceStartError(
            service=spec.name,
            timeout=self.settings.start_timeout,
            log=self.log_file(spec.name),
            detail=f"{spec.health_url or spec.url} did not answer. Last log lines:\n"
            + self.tail(spec.name, 8),
        )

    # -- down
    def down(self, names: list[str] | None = None) -> list[str]:
        """Stop the services this data folder's PID files name, children included."""
        stopped = []
        wanted = names or [p.stem for p in sorted(self.run_dir.glob("*.json"))]
        for name in wanted:
            if self._stop_one(name):
                stopped.append(name)
        return stopped

    def _stop_one(self, name: str) -> bool:
        path = self.pid_file(name)
        record = read_record(path)
        stopped = bool(record) and stop_tree(record)  # type: ignore[arg-type]
        path.unlink(missing_ok=True)
        return stopped

    # -- status
    def status(self, names: list[str] | None = None) -> list[ServiceStatus]:
        import psutil

        out = []
        for name, build in SERVICE_BUILDERS.items():
            if names and name not in names:
                continue
            try:
                spec = build(self.settings)
            except FlywheelError as exc:
                out.append(ServiceStatus(name, "-", None, "unavailable", exc.parts()[0]))
                continue
            if spec is None:
                url = {"mlflow": self.settings.tracking_uri, "llm": self.settings.llm_url}.get(
                    name, self.settings.milvus_uri or "-"
                )
                out.append(ServiceStatus(name, url, None, "external", "configured, not started by flywheel"))
                continue
            record = read_record(self.pid_file(name))
            if not record or not is_alive(record):
                out.append(ServiceStatus(name, spec.url, None, "stopped", spec.description))
                continue
            healthy = check_spec(spec)
            try:
                proc = psutil.Process(record.pid)
                rss = sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20
            except psutil.Error:
                rss = None
            out.append(
                ServiceStatus(
                    name, spec.url, record.pid, "healthy" if healthy else "starting", spec.description, rss
                )
            )
        return out

    def running_url(self, name: str) -> str | None:
        """URL of a service this data folder's stack is running, else None."""
        record = read_record(self.pid_file(name))
        return record.url if record and is_alive(record) else None

    # -- logs
    def tail(self, name: str, lines: int = 50) -> str:
        path = self.log_file(name)
        if not path.exists():
            return "(no log yet)"
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-lines:])
