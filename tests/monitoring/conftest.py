"""A local agent server on the session's real stack, shared by the production-loop tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flywheel.config import Settings
from flywheel.stack import Stack
from tests.conftest import free_port


@pytest.fixture(scope="module")
def served_local(stack: Settings) -> Iterator[Settings]:
    settings = stack.model_copy(update={"agent_port": free_port(), "serve_model": None})
    Stack(settings).up(["agent"])
    try:
        yield settings
    finally:
        Stack(settings).down(["agent"])
