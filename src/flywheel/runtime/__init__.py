"""Agent runtimes: deploy / update / invoke / list / delete an agent version somewhere it answers.

Backends, one interface (``deploy``, ``get``/``all``, ``delete``, ``gc``; ``update`` where the
platform has it):

- ``local`` (default): the agent server as a child process on a free port, a record under
  ``data/runtimes/`` with the owner's PID; ``gc`` removes runtimes whose owner is gone;
- ``kubernetes``: a Deployment + Service per version (``deploy/k8s/runtime/agent-runtime.yaml``)
  through the Kubernetes Python client;
- ``docker``: a container per version through the Docker SDK;
- ``agentcore``: Amazon Bedrock AgentCore Runtime through boto3 (immutable versions, pinned
  endpoints, session ids).

Gate and tune runtimes carry ``purpose`` labels; remote ones also an expiry that ``gc`` honours.
"""

from flywheel.runtime._agentcore import AgentCoreRuntimes
from flywheel.runtime._docker import DockerRuntimes
from flywheel.runtime._factory import runtimes_for
from flywheel.runtime._kubernetes import KubernetesRuntimes, render_runtime
from flywheel.runtime._local import LocalRuntimes, Runtime
from flywheel.runtime._trial import deploy_and_evaluate

__all__ = [
    "AgentCoreRuntimes",
    "DockerRuntimes",
    "KubernetesRuntimes",
    "LocalRuntimes",
    "Runtime",
    "deploy_and_evaluate",
    "render_runtime",
    "runtimes_for",
]
