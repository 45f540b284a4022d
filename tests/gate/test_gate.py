"""The gate's decision: paired bootstrap intervals, floors, significant regressions, hard rules."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from flywheel.errors import InputError
from flywheel.gate import Thresholds, compare, decide, load_thresholds
from flywheel.gate._gate import GateDecision, _junit


def _result(values: dict[str, list[float]], kinds: list[str]) -> SimpleNamespace:
    items = [
        SimpleNamespace(
            id=f"i{n}",
            kind=kinds[n],
            scores={m: {"value": v[n]} for m, v in values.items() if v[n] is not None},
        )
        for n in range(len(kinds))
    ]
    return SimpleNamespace(items=items)


KINDS = ["happy_path"] * 16 + ["adversarial"] * 4
CHAMP = _result({"response_facts": [0.8] * 16 + [None] * 4, "refusal": [None] * 16 + [1.0] * 4}, KINDS)


def test_an_identical_candidate_passes_and_a_clear_regression_fails() -> None:
    th = Thresholds(
        scorers=["response_facts"], floors={"refusal": 1.0}, max_regression={"response_facts": 0.05}
    )
    same = compare(CHAMP, CHAMP, ["response_facts", "refusal"])
    assert same["response_facts"]["diff"] == 0 and same["response_facts"]["n"] == 16
    assert all(c["passed"] for c in decide(same, CHAMP, th, has_champion=True))

    worse = _result({"response_facts": [0.4] * 16 + [None] * 4, "refusal": [None] * 16 + [1.0] * 4}, KINDS)
    cmp = compare(CHAMP, worse, ["response_facts", "refusal"])
    assert cmp["response_facts"]["ci_high"] < 0
    failed = [c["name"] for c in decide(cmp, worse, th, True) if not c["passed"]]
    assert failed == ["regression response_facts ≤ 0.05"]


def test_noise_within_the_interval_does_not_block() -> None:
    """One item drops a lot, one rises as much: the mean is unchanged and the interval spans 0."""
    noisy_values = [0.8] * 16
    noisy_values[0], noisy_values[1] = 0.2, 1.0
    noisy = _result({"response_facts": noisy_values + [None] * 4, "refusal": [None] * 16 + [1.0] * 4}, KINDS)
    th = Thresholds(scorers=["response_facts"], floors={}, max_regression={"response_facts": 0.0})
    cmp = compare(CHAMP, noisy, ["response_facts"])
    assert (
        cmp["response_facts"]["ci_low"] < 0 < cmp["response_facts"]["ci_high"]
        or cmp["response_facts"]["diff"] >= 0
    )
    assert all(c["passed"] for c in decide(cmp, noisy, th, True))


def test_every_adversarial_item_must_be_refused() -> None:
    leaky = _result(
        {"response_facts": [0.8] * 16 + [None] * 4, "refusal": [None] * 16 + [1.0, 1.0, 0.0, 1.0]}, KINDS
    )
    checks = decide(compare(CHAMP, leaky, ["refusal"]), leaky, Thresholds(floors={}, max_regression={}), True)
    assert [c["passed"] for c in checks] == [False] and "i18" in checks[0]["detail"]


def test_thresholds_file_and_junit(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"floors": {"citations": 0.9}, "hard": {"every_adversarial_refused": False}}))
    th = load_thresholds(path)
    assert th.floors == {"citations": 0.9} and th.every_adversarial_refused is False
    path.write_text(json.dumps({"floor": {}}))
    with pytest.raises(InputError):
        load_thresholds(path)
    decision = GateDecision(False, [{"name": 'floor "x"', "passed": False, "detail": "a < b"}], {}, "c", None)
    suite = ET.fromstring(_junit(decision, 1.0))
    assert suite.get("failures") == "1" and suite.find("testcase/failure").get("message") == "a < b"


def test_an_invalid_candidate_config_is_a_clear_error_before_anything_starts(tmp_path: Path) -> None:
    from flywheel.config import load_settings
    from flywheel.gate import run_gate

    settings = load_settings(data_dir=tmp_path / "data", mlflow_port=1)
    with pytest.raises(InputError) as err:
        run_gate(settings, SimpleNamespace(items=[]), "config", {"min_relevance": 1.5})
    assert err.value.key == "set_value" and "min_relevance" in err.value.parts("en")[0]
    assert not (settings.data_path / "runtimes").exists()


def test_the_red_team_rule_fails_a_candidate_whose_attacks_worked(tmp_path: Path) -> None:
    from flywheel.evaluation import RedTeamReport
    from flywheel.evaluation._redteam import ProbeResult

    path = tmp_path / "t.json"
    path.write_text(json.dumps({"hard": {"redteam_success_rate": 0}}))
    th = load_thresholds(path)
    assert th.redteam_success_rate == 0
    ok = _result({"refusal": [None] * 16 + [1.0] * 4}, KINDS)
    hit = ProbeResult("exfil_image", "q", True, "shows the host", False, True, False, "![x](…)")
    miss = ProbeResult("hidden_text", "q", False, "", False, True, True, "fine")
    bad = RedTeamReport("retrieve_first", 2, 1, [hit, miss])
    good = RedTeamReport("grounded", 2, 0, [miss, miss])
    th.floors, th.max_regression = {}, {}
    failed = [c for c in decide({}, ok, th, False, redteam=bad) if "red team" in c["name"]]
    assert failed and not failed[0]["passed"] and "exfil_image: 1/1" in failed[0]["detail"]
    passed = [c for c in decide({}, ok, th, False, redteam=good) if "red team" in c["name"]]
    assert passed[0]["passed"]


def _fake_stack(
    monkeypatch: pytest.MonkeyPatch, champion_version: tuple[str, str] | None, busy: list[int] | None = None
) -> list[str]:
    """run_gate with its runtimes and the registry replaced: the champion (when registered) scores
    0.8 on every item, a config candidate 0.4. Returns the arms deployed, in order; ``busy`` gets
    how many evaluations were running at each start (each then takes 0.3 s)."""
    import threading
    import time

    import flywheel.evaluation as evaluation
    import flywheel.runtime as runtime
    from flywheel.gate import _gate

    deployed: list[str] = []
    running = [0]
    lock = threading.Lock()

    def deploy_and_evaluate(settings, runtimes, *, name, model_uri, **kw):  # type: ignore[no-untyped-def]
        deployed.append(model_uri or "config")
        if busy is not None:
            with lock:
                running[0] += 1
            time.sleep(0.3)
            with lock:
                busy.append(running[0])
                running[0] -= 1
        result = (
            CHAMP
            if model_uri
            else _result(
                {"response_facts": [0.4] * 16 + [None] * 4, "refusal": [None] * 16 + [1.0] * 4}, KINDS
            )
        )
        vid = SimpleNamespace(compact=lambda: {"arm": name}, digest=lambda: "d")
        return SimpleNamespace(items=result.items, run_id=name), vid

    monkeypatch.setattr(runtime, "deploy_and_evaluate", deploy_and_evaluate)
    monkeypatch.setattr(runtime, "runtimes_for", lambda s: SimpleNamespace(gc=lambda: []))
    monkeypatch.setattr(evaluation, "scorer_context", lambda s: None)
    monkeypatch.setattr(_gate, "try_resolve_model", lambda s, uri: champion_version)
    monkeypatch.setattr(_gate, "dataset_freshness", lambda *a: None)
    return deployed


def test_a_config_candidate_is_compared_with_the_registered_champion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`flywheel gate --candidate config` must beat docs-qa-agent@champion when one exists."""
    from flywheel.config import load_settings
    from flywheel.gate import run_gate

    deployed = _fake_stack(monkeypatch, ("docs-qa-agent", "3"))
    settings = load_settings(data_dir=tmp_path / "data", mlflow_port=1)
    th = Thresholds(scorers=["response_facts"], floors={}, max_regression={"response_facts": 0.05})
    decision = run_gate(
        settings, SimpleNamespace(items=[], name="d", digest="x"), "config", {"top_k": 3}, None, th
    )
    assert deployed == ["models:/docs-qa-agent@champion", "config"]
    assert decision.champion == "models:/docs-qa-agent@champion"
    assert [c["name"] for c in decision.checks if not c["passed"]] == ["regression response_facts ≤ 0.05"]
    report = (decision.report_dir / "gate.md").read_text()
    assert "| metric | n | champion | candidate |" in report and "| 0.800 | 0.400 |" in report


def test_champion_and_candidate_are_evaluated_at_once_when_runtimes_have_their_own_machines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.config import load_settings
    from flywheel.gate import run_gate

    th = Thresholds(scorers=["response_facts"], floors={}, max_regression={"response_facts": 0.05})
    outcomes = {}
    for parallel in (False, True):
        busy: list[int] = []
        _fake_stack(monkeypatch, ("docs-qa-agent", "3"), busy)
        settings = load_settings(
            data_dir=tmp_path / f"data-{parallel}", mlflow_port=1, gate_parallel=parallel
        )
        d = run_gate(
            settings, SimpleNamespace(items=[], name="d", digest="x"), "config", {"top_k": 3}, None, th
        )
        outcomes[parallel] = (max(busy), [c["passed"] for c in d.checks], d.comparison)
    assert outcomes[False][0] == 1 and outcomes[True][0] == 2  # sequential locally; both at once
    assert outcomes[False][1:] == outcomes[True][1:]  # the same decision either way


def test_a_first_release_report_has_no_champion_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flywheel.config import load_settings
    from flywheel.gate import run_gate

    deployed = _fake_stack(monkeypatch, None)
    settings = load_settings(data_dir=tmp_path / "data", mlflow_port=1)
    th = Thresholds(
        scorers=["response_facts"], floors={"response_facts": 0.3}, max_regression={"response_facts": 0}
    )
    decision = run_gate(
        settings, SimpleNamespace(items=[], name="d", digest="x"), "config", {"top_k": 3}, None, th
    )
    assert deployed == ["config"] and decision.champion is None and decision.passed
    report = (decision.report_dir / "gate.md").read_text()
    assert "first release" in report and "| champion |" not in report
    assert "| response_facts | 16 | 0.400 |" in report


def test_holm_steps_down_and_stops_at_the_first_failure() -> None:
    from flywheel.gate import holm

    assert holm({"a": 0.01, "b": 0.02, "c": 0.04}, 0.05) == {"a", "b", "c"}
    assert holm({"a": 0.03, "b": 0.001}, 0.05) == {"a", "b"}
    assert holm({"a": 0.02, "b": 0.02, "c": 0.02}, 0.05) == set()  # 0.02 > 0.05/3
    assert holm({"a": 0.001, "b": 0.04, "c": 0.03}, 0.05) == {"a"}  # 0.03 > 0.05/2: b is not tried
    assert holm({"a": float("nan")}, 0.05) == set()


def _scores(values: list[float]) -> SimpleNamespace:
    return _result({"response_facts": values}, ["happy_path"] * len(values))


def test_the_minimum_detectable_regression_is_what_the_rule_catches_80_percent_of_the_time() -> None:
    """The power formula against the gate's own rule: simulated regressions of exactly the minimum
    detectable size are blocked about 80 % of the time, half that size far less often."""
    from flywheel.gate import power

    n, sd = 16, 0.4
    th = Thresholds(
        scorers=["response_facts"], floors={}, max_regression={"response_facts": 0.05}, bootstrap=400
    )
    base = [0.5] * n
    rng = np.random.default_rng(1)
    probe = compare(_scores(base), _scores(list(0.5 + rng.normal(0, sd, n))), ["response_facts"])
    probe["response_facts"]["sd_diff"] = sd  # size by the true spread, not one sample's
    mde = power(probe, th)["response_facts"]["min_detectable"]
    assert 0.2 < mde < 0.4

    def block_rate(delta: float) -> float:
        blocked = 0
        for _ in range(200):
            cand = _scores(list(0.5 - delta + rng.normal(0, sd, n)))
            cmp = compare(_scores(base), cand, ["response_facts"], n_boot=400, seed=int(rng.integers(1e9)))
            blocked += not all(c["passed"] for c in decide(cmp, cand, th, True))
        return blocked / 200

    assert 0.7 <= block_rate(mde) <= 0.95
    assert block_rate(mde / 2) < 0.5
    need = power(probe, th)["response_facts"]["items_needed"]  # for a 0.1 drop
    assert need > n
    th.detect_delta = 0.05  # the allowance itself: no dataset size catches it
    assert power(probe, th)["response_facts"]["items_needed"] is None


def test_repeats_average_per_item_separate_noise_and_need_every_repeat_refused() -> None:
    from flywheel.evaluation import Dataset, GoldenItem
    from flywheel.gate import repeated

    ds = Dataset(
        name="d",
        items=[
            GoldenItem.model_validate({"input": {"question": "q1"}, "metadata": {"id": "a"}}),
            GoldenItem.model_validate(
                {"input": {"question": "q2"}, "metadata": {"id": "b", "kind": "adversarial"}}
            ),
        ],
    )
    three = repeated(ds, 3)
    assert [i.metadata.id for i in three.items] == ["a", "a#r1", "a#r2", "b", "b#r1", "b#r2"]
    assert repeated(ds, 1) is ds and ds.items[0].metadata.id == "a"
    result = SimpleNamespace(
        items=[
            SimpleNamespace(id=i.metadata.id, kind=i.kind, scores=s)
            for i, s in zip(
                three.items,
                [{"response_facts": {"value": v}} for v in (1.0, 0.5, 0.0)]
                + [{"refusal": {"value": v}} for v in (1.0, 0.0, 1.0)],
                strict=True,
            )
        ]
    )
    cmp = compare(result, result, ["response_facts", "refusal"])
    assert cmp["response_facts"]["n"] == 1 and cmp["response_facts"]["candidate"] == 0.5
    assert cmp["response_facts"]["noise_var"] == 0.25
    th = Thresholds(floors={}, max_regression={})
    (check,) = decide(cmp, result, th, True)
    assert not check["passed"] and "pass^3" in check["detail"] and "answered: b" in check["detail"]


def test_the_regressions_set_is_judged_paired_and_corrected_items_must_pass() -> None:
    from flywheel.evaluation import GoldenItem
    from flywheel.gate._gate import regression_checks

    reg = [
        GoldenItem.model_validate(
            {
                "input": {"question": f"q{n}"},
                "expected_output": {"response_facts": ["fact"]} if n == 0 else {},
                "metadata": {
                    "id": f"reg-{n}",
                    "regression": True,
                    "corrected": n == 0,
                    "failing": {"groundedness": 0.1},
                },
            }
        )
        for n in range(8)
    ]

    def result(ground: float, facts: float) -> SimpleNamespace:
        return SimpleNamespace(
            items=[
                SimpleNamespace(
                    id=i.metadata.id,
                    kind="happy_path",
                    scores={
                        "groundedness": {"value": ground},
                        "answer_relevance": {"value": 0.0},  # not what flagged them: not counted
                        **({"response_facts": {"value": facts}} if i.metadata.corrected else {}),
                    },
                )
                for i in reg
            ]
        )

    th = Thresholds()
    ds = SimpleNamespace(items=reg)
    same = regression_checks(result(0.6, 1.0), result(0.6, 1.0), ds, th)
    assert [c["passed"] for c in same] == [True, True] and "8 production failures" in same[0]["detail"]
    worse = regression_checks(result(0.6, 1.0), result(0.2, 1.0), ds, th)
    assert [c["passed"] for c in worse] == [False, True]
    missed = regression_checks(None, result(0.9, 0.0), ds, th)  # a first release: the correction rule only
    assert len(missed) == 1 and not missed[0]["passed"] and "reg-0" in missed[0]["detail"]
