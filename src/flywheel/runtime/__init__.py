"""Agent runtimes: deploy / invoke / list / delete an agent version somewhere it answers over HTTP.

Only the ``local`` backend exists so far: the agent server as a child process on a free port, with a
PID record under ``data/runtimes/`` carrying a label (``flywheel.purpose``: gate, tune, manual), so
that ``flywheel runtime gc`` finds and removes what a killed gate or tune left behind. Kubernetes,
Docker and AgentCore backends are later work (issue #11).
"""

from flywheel.runtime._local import LocalRuntimes, Runtime
from flywheel.runtime._trial import deploy_and_evaluate

__all__ = ["LocalRuntimes", "Runtime", "deploy_and_evaluate"]
