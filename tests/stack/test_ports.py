"""A taken port is a clear error that names the port and what holds it; nothing is started."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from flywheel.config import load_settings
from flywheel.errors import PortInUseError
from flywheel.stack import Stack, port_holder, port_is_free
from tests.conftest import free_port


def test_port_is_free_and_holder() -> None:
    port = free_port()
    assert port_is_free("127.0.0.1", port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert not port_is_free("127.0.0.1", port)
        pid, desc = port_holder(port)
        assert pid == os.getpid() and f"PID {os.getpid()}" in desc


def test_up_refuses_a_taken_port_and_starts_nothing(tmp_path: Path) -> None:
    port = free_port()
    settings = load_settings(
        data_dir=tmp_path / "data", mlflow_port=port, llm_port=free_port(), milvus_port=free_port()
    )
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        with pytest.raises(PortInUseError) as info:
            Stack(settings).up()
    text = info.value.render("en")
    assert f"port {port}" in text and f"PID {os.getpid()}" in text and "FLYWHEEL_MLFLOW_PORT" in text
    assert not list((tmp_path / "data" / "run").glob("*.json"))  # nothing half-started
