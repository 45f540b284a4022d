"""The production loop: online evaluation of sampled production traces (``flywheel monitor``)."""

from flywheel.monitoring._agreement import Agreement, agreement, pairs_from_traces
from flywheel.monitoring._online import MonitorOptions, OnlineMonitor, trace_to_output

__all__ = [
    "Agreement",
    "MonitorOptions",
    "OnlineMonitor",
    "agreement",
    "pairs_from_traces",
    "trace_to_output",
]
