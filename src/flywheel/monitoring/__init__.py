"""The production loop: online evaluation of sampled production traces (``flywheel monitor``)."""

from flywheel.monitoring._online import MonitorOptions, OnlineMonitor, trace_to_output

__all__ = ["MonitorOptions", "OnlineMonitor", "trace_to_output"]
