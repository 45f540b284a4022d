"""Start, stop and check the embedded services: MLflow tracking server and the local LLM."""

from flywheel.stack._manager import ServiceStatus, Stack, check_health
from flywheel.stack._ports import free_port, port_holder, port_is_free
from flywheel.stack._process import ProcessRecord, is_alive, same_process, spawn, start_ticks, stop_tree
from flywheel.stack._require import reachable, require
from flywheel.stack._services import SERVICE_BUILDERS, ServiceSpec, find_gguf, register_service

__all__ = [
    "SERVICE_BUILDERS",
    "ProcessRecord",
    "ServiceSpec",
    "ServiceStatus",
    "Stack",
    "check_health",
    "find_gguf",
    "free_port",
    "is_alive",
    "port_holder",
    "port_is_free",
    "reachable",
    "register_service",
    "require",
    "same_process",
    "spawn",
    "start_ticks",
    "stop_tree",
]

from flywheel.stack._doctor import Check, run_checks

__all__ += ["Check", "run_checks"]
