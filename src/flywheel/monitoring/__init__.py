"""The production loop: online evaluation of sampled production traces (``flywheel monitor``) and
the regressions curated from its failures (``flywheel monitor curate``)."""

from flywheel.monitoring._agreement import Agreement, agreement, pairs_from_traces
from flywheel.monitoring._curate import CurateOptions, CurateReport, curate, scrub
from flywheel.monitoring._online import MonitorOptions, OnlineMonitor, trace_to_output

__all__ = [
    "Agreement",
    "CurateOptions",
    "CurateReport",
    "MonitorOptions",
    "OnlineMonitor",
    "agreement",
    "curate",
    "pairs_from_traces",
    "scrub",
    "trace_to_output",
]
