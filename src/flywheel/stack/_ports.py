"""Is a TCP port free, and if not, which process holds it."""

from __future__ import annotations

import errno
import socket

import psutil

__all__ = ["free_port", "port_holder", "port_is_free"]


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port. SO_REUSEADDR, like the servers themselves use,
    so that connections in TIME_WAIT after a stop do not count as "in use"."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_holder(port: int) -> tuple[int | None, str]:
    """(pid, description) of the process listening on ``port``, or (None, 'another process')."""
    try:
        conns = psutil.net_connections(kind="inet")
    except (psutil.AccessDenied, PermissionError):
        return None, "another process"
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            try:
                proc = psutil.Process(conn.pid)
                cmd = " ".join(proc.cmdline())[:120] or proc.name()
            except psutil.Error:
                cmd = "?"
            return conn.pid, f"PID {conn.pid} ({cmd})"
    return None, "another process"
