"""Online A/B: the sequential rule on simulated score streams, guards, the decision acted on, and
the router's sticky, traced split."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI, Request  # at module level: the fake agents' annotations resolve here

from flywheel.monitoring._ab import ABDecision, apply_decision, decide
from flywheel.serving._ab import ABExperiment, arm_for, load_experiment, save_experiment


def _obs(
    champion: list[float], challenger: list[float], extra: dict[str, dict[str, list[float]]] | None = None
) -> dict[str, dict[str, list[float]]]:
    out = {}
    for arm, q in (("champion", champion), ("challenger", challenger)):
        n = len(q)
        out[arm] = {"quality": list(q), "error": [0.0] * n, "refused": [0.0] * n, "latency_ms": [100.0] * n}
        out[arm].update((extra or {}).get(arm, {}))
    return out


def _run(p_champion: float, p_challenger: float, rng: np.random.Generator, share: float = 0.5) -> str:
    """One experiment: users arrive, each answer is good with its arm's probability; the rule is
    checked after every 20 answers (continuous monitoring), up to 3,000 answers."""
    exp = ABExperiment("sim", "c", "d", share)
    champ: list[float] = []
    chall: list[float] = []
    for n in range(1, 3001):
        if rng.uniform() < share:
            chall.append(float(rng.uniform() < p_challenger))
        else:
            champ.append(float(rng.uniform() < p_champion))
        if n % 20 == 0:
            action = decide(exp, _obs(champ, chall)).action
            if action != "continue":
                return action
    return "continue"


def test_the_rule_promotes_a_better_challenger_rolls_back_a_worse_one_and_leaves_equals_alone() -> None:
    rng = np.random.default_rng(7)
    worse = [_run(0.7, 0.55, rng) for _ in range(10)]
    better = [_run(0.55, 0.7, rng) for _ in range(10)]
    same = [_run(0.6, 0.6, rng) for _ in range(10)]
    assert worse.count("promote") == 0 and worse.count("rollback") >= 8
    assert better.count("promote") >= 8 and better.count("rollback") == 0
    assert sum(a != "continue" for a in same) <= 1


def test_guards_roll_back_before_the_quality_is_known() -> None:
    exp = ABExperiment("g", "c", "d", 0.5)
    q = [0.8] * 200
    errors = _obs(q, q, {"challenger": {"error": [1.0] * 40 + [0.0] * 160}})
    d = decide(exp, errors)
    assert d.action == "rollback" and "error rate" in d.reason
    slow = _obs(q, q, {"challenger": {"latency_ms": [400.0] * 200}})
    assert decide(exp, slow).action == "rollback" and "latency" in decide(exp, slow).reason
    few = _obs([0.8] * 5, [0.1] * 5)
    assert decide(exp, few).action == "continue" and "too few" in decide(exp, few).reason


def test_a_decision_moves_aliases_and_traffic_and_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flywheel.registry as registry
    import flywheel.tracking as tracking
    from flywheel.config import load_settings

    settings = load_settings(data_dir=tmp_path / "data", mlflow_port=1)
    aliases: dict[str, int] = {"champion": 3}
    monkeypatch.setattr(registry, "set_alias", lambda s, name, alias, v: aliases.__setitem__(alias, v))
    monkeypatch.setattr(
        tracking, "try_resolve_model", lambda s, uri: ("m", "3") if uri.endswith("champion") else ("m", "5")
    )
    exp = ABExperiment("p", "models:/m@champion", "models:/m@challenger", 0.1)
    save_experiment(settings, exp)
    apply_decision(settings, exp, ABDecision("promote", "better", {"quality": {}}), dry_run=True)
    assert aliases == {"champion": 3} and load_experiment(settings, "p").share == 0.1  # type: ignore[union-attr]
    apply_decision(settings, exp, ABDecision("promote", "better", {"quality": {}}))
    assert aliases == {"champion": 5, "previous": 3}
    saved = load_experiment(settings, "p")
    assert saved is not None and saved.status == "promoted" and saved.share == 1.0
    assert saved.decisions[-1]["action"] == "promote" and saved.decisions[-1]["evidence"] == {"quality": {}}
    assert arm_for(saved, "anyone") == "challenger"

    back = ABExperiment("r", "models:/m@champion", "models:/m@challenger", 0.3)
    apply_decision(settings, back, ABDecision("rollback", "worse", {}))
    saved = load_experiment(settings, "r")
    assert saved is not None and saved.status == "rolled_back" and saved.share == 0.0
    assert arm_for(saved, "anyone") == "champion" and aliases["champion"] == 5
    log = (settings.data_path / "ab" / "decisions.jsonl").read_text().splitlines()
    assert [json.loads(x)["action"] for x in log] == ["promote", "rollback"]


def test_the_split_is_sticky_per_user_and_near_the_share() -> None:
    exp = ABExperiment("s", "a", "b", 0.1)
    arms = [arm_for(exp, f"user-{i}") for i in range(5000)]
    assert 0.08 < arms.count("challenger") / 5000 < 0.12
    assert all(arm_for(exp, f"user-{i}") == arms[i] for i in range(200))


def test_the_router_tags_the_arm_and_keeps_a_conversation_on_its_arm(tmp_path: Path) -> None:
    import httpx
    from fastapi.testclient import TestClient

    from flywheel.config import load_settings
    from flywheel.serving._ab import build_ab_app

    seen: list[tuple[str, dict[str, Any]]] = []

    def agent(arm: str) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/responses")
        async def responses(request: Request) -> dict[str, Any]:
            body = await request.json()
            seen.append((arm, body))
            return {"id": f"resp_{arm}_{len(seen)}", "output_text": arm}

        @app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": arm}

        return app

    apps = {"http://champion": agent("champion"), "http://challenger": agent("challenger")}

    class Route(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            base = f"{request.url.scheme}://{request.url.host}"
            return await httpx.ASGITransport(app=apps[base]).handle_async_request(request)

    settings = load_settings(data_dir=tmp_path / "data", mlflow_port=1)
    save_experiment(settings, ABExperiment("default", "a", "b", 0.5))
    router = build_ab_app(
        settings, {"champion": "http://champion", "challenger": "http://challenger"}, transport=Route()
    )
    with TestClient(router) as client:
        arms = {}
        for i in range(40):
            r = client.post("/v1/responses", json={"input": "How do I log a model?", "user": f"u{i}"})
            assert r.status_code == 200 and r.headers["X-Flywheel-Arm"] == r.json()["output_text"]
            arms[f"u{i}"] = r.json()
        assert {a["output_text"] for a in arms.values()} == {"champion", "challenger"}
        assert all(body["metadata"]["arm"] == arm for arm, body in seen)
        again = client.post("/v1/responses", json={"input": "And then?", "user": "u3"})
        assert again.json()["output_text"] == arms["u3"]["output_text"]  # sticky
        follow = client.post(
            "/v1/responses", json={"input": "More?", "previous_response_id": arms["u5"]["id"]}
        )
        assert follow.json()["output_text"] == arms["u5"]["output_text"]  # where its thread lives
        assert client.get("/health").json() == {"status": "champion"}
