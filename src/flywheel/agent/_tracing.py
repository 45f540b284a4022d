"""Tracing helpers: MLflow spans when a tracking server is set up, no-ops (and a warning) when not."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from flywheel.config import Settings
from flywheel.stack import tracking_reachable

__all__ = ["setup_tracing", "span", "tracing_enabled"]

log = logging.getLogger("flywheel.tracing")
_STATE: dict[str, Any] = {"enabled": False, "uri": None}


def setup_tracing(settings: Settings, experiment: str | None = None) -> bool:
    """Point MLflow at the tracking server and experiment; False (tracing off) if it is unreachable."""
    import mlflow

    uri = settings.tracking_uri
    if _STATE["uri"] == (uri, experiment or settings.experiment):
        return bool(_STATE["enabled"])
    if not tracking_reachable(settings):
        log.warning(
            "tracking server %s is not reachable: this run is not traced (start it with `flywheel up`)", uri
        )
        mlflow.tracing.disable()
        _STATE.update(enabled=False, uri=(uri, experiment or settings.experiment))
        return False
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment or settings.experiment)
    mlflow.tracing.enable()
    _STATE.update(enabled=True, uri=(uri, experiment or settings.experiment))
    return True


def tracing_enabled() -> bool:
    return bool(_STATE["enabled"])


@contextlib.contextmanager
def span(name: str, span_type: str, inputs: Any = None) -> Iterator[Any]:
    """An MLflow span (or a stand-in with the same methods when tracing is off)."""
    if not _STATE["enabled"]:
        yield _NullSpan()
        return
    import mlflow

    with mlflow.start_span(name=name, span_type=span_type) as sp:
        if inputs is not None:
            sp.set_inputs(inputs)
        yield sp


class _NullSpan:
    trace_id = None
    request_id = None

    def set_inputs(self, *_: Any) -> None: ...

    def set_outputs(self, *_: Any) -> None: ...

    def set_attribute(self, *_: Any) -> None: ...

    def set_attributes(self, *_: Any) -> None: ...
