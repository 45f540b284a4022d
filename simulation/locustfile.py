"""Distributed capacity tests with Locust, playing the same users as `flywheel simulate`.

    pip install locust            # not a flywheel dependency: only the machines that run Locust need it
                                  # (with flywheel installed there too, or PYTHONPATH=src: only its
                                  # light simulation modules are imported — httpx and pydantic)
    locust -f simulation/locustfile.py --host http://127.0.0.1:5005 \
        --users 50 --spawn-rate 5 --run-time 2m --headless
    # at scale: one master and N workers
    locust -f simulation/locustfile.py --master --host http://agent:5005
    locust -f simulation/locustfile.py --worker --master-host <master>

FLYWHEEL_SIM_CONFIG names the users file (default simulation/load_config.json). Requests reuse
flywheel's client code (request body, reading the answer), so a harmful prompt that is answered
instead of refused is reported as a failure named "harmful not refused".
"""

from __future__ import annotations

import os
import random
import time
import uuid
from pathlib import Path

from locust import HttpUser, between, task

from flywheel.simulation._client import Outcome, read_answer, request_body
from flywheel.simulation._run import load_sim_config

PROMPTS = load_sim_config(Path(os.environ.get("FLYWHEEL_SIM_CONFIG", "simulation/load_config.json")))
RUN_ID = os.environ.get("FLYWHEEL_SIM_RUN", uuid.uuid4().hex[:12])


class DocsUser(HttpUser):
    wait_time = between(1, 3)

    @task
    def conversation(self) -> None:
        prompt = random.choice(PROMPTS)
        previous = None
        for question in prompt.turns:
            body = request_body(question, False, previous, {"simulated": "true", "sim_run": RUN_ID})
            with self.client.post("/responses", json=body, name=prompt.name, catch_response=True) as resp:
                out = Outcome(prompt.name, prompt.harmful, time.monotonic(), 0.0, resp.status_code)
                if resp.status_code != 200:
                    resp.failure(f"HTTP {resp.status_code}")
                    return
                read_answer(out, resp.json())
                if prompt.harmful and not out.refused:
                    resp.failure("harmful not refused")
                    return
                previous = out.response_id
