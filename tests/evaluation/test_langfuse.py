"""Langfuse sync through the official SDK against a local stub of Langfuse's public HTTP API (no
real Langfuse server is reachable here): datasets both ways, scores linked to traces, clear errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flywheel.config import load_settings
from flywheel.errors import ConfigError, InputError, ServiceUnavailableError
from flywheel.evaluation import load_dataset
from flywheel.evaluation._langfuse import LangfuseScore, pull_dataset, push_dataset, push_scores
from tests.evaluation.langfuse_stub import PUBLIC, SECRET, LangfuseStub, running_stub

GOLDEN = Path(__file__).resolve().parents[2] / "datasets" / "flywheel-docs-golden.json"
SEED_NAME = "strands-ai-mcp-agent-evaluation"  # the other seed's dataset name


@pytest.fixture
def langfuse(monkeypatch: pytest.MonkeyPatch) -> Iterator[LangfuseStub]:
    with running_stub() as (url, stub):
        monkeypatch.setenv("LANGFUSE_HOST", url)
        monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", PUBLIC)
        monkeypatch.setenv("LANGFUSE_SECRET_KEY", SECRET)
        yield stub


def test_push_then_pull_gives_back_the_same_golden_items(langfuse: LangfuseStub) -> None:
    settings = load_settings()
    golden = load_dataset(GOLDEN)
    name, n = push_dataset(settings, golden, SEED_NAME)
    assert (name, n) == (SEED_NAME, len(golden.items))
    push_dataset(settings, golden, SEED_NAME)  # again: an update, not duplicates
    assert len(langfuse.items) == len(golden.items)
    back = pull_dataset(settings, SEED_NAME)
    assert [i.question for i in back.items] == [i.question for i in golden.items]
    assert [i.kind for i in back.items] == [i.kind for i in golden.items]
    assert [i.expected_output.response_facts for i in back.items] == [
        i.expected_output.response_facts for i in golden.items
    ]
    assert back.split("test").items  # a pulled dataset is a normal one: split, digest, evaluate
    assert langfuse.datasets[SEED_NAME]["metadata"]["digest"] == golden.digest


def test_a_dataset_made_in_langfuses_ui_with_plain_inputs_is_pulled(langfuse: LangfuseStub) -> None:
    langfuse.datasets["ui-made"] = {
        "id": "ds-ui",
        "name": "ui-made",
        "description": None,
        "metadata": None,
        "projectId": "proj",
        "createdAt": "2026-11-30T00:00:00Z",
        "updatedAt": "2026-11-30T00:00:00Z",
    }
    for i, (inp, out) in enumerate([("What port does the gateway use?", "5010"), ({"query": "Who?"}, None)]):
        langfuse.items[f"u{i}"] = {
            "id": f"u{i}",
            "status": "ACTIVE",
            "input": inp,
            "expectedOutput": out,
            "metadata": None,
            "datasetId": "ds-ui",
            "datasetName": "ui-made",
            "createdAt": "2026-11-30T00:00:00Z",
            "updatedAt": "2026-11-30T00:00:00Z",
            "mediaReferences": [],
        }
    ds = pull_dataset(load_settings(), "ui-made")
    assert [i.question for i in ds.items] == ["What port does the gateway use?", "Who?"]
    assert ds.items[0].expected_output.response_facts == ["5010"]
    assert ds.items[0].metadata.id == "u0" and ds.items[0].kind == "happy_path"


def test_scores_are_linked_to_the_exported_traces(langfuse: LangfuseStub) -> None:
    sent = push_scores(
        load_settings(),
        [
            LangfuseScore("tr-" + "a" * 32, "response_facts", 0.75, "2 of 3 facts"),
            LangfuseScore("b" * 32, "refusal", True),
            LangfuseScore("", "skipped", 1.0),  # no trace: not sent
        ],
    )
    assert sent == 2
    by_name = {s["name"]: s for s in langfuse.scores}
    assert by_name["response_facts"]["traceId"] == "a" * 32
    assert by_name["response_facts"]["value"] == 0.75 and by_name["response_facts"]["dataType"] == "NUMERIC"
    assert by_name["response_facts"]["comment"] == "2 of 3 facts"
    assert by_name["refusal"]["dataType"] == "BOOLEAN" and by_name["refusal"]["value"] == 1.0


def test_wrong_keys_are_a_clear_error_and_nothing_is_written(
    langfuse: LangfuseStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-wrong")
    with pytest.raises(ServiceUnavailableError) as err:
        push_dataset(load_settings(), load_dataset(GOLDEN), "x")
    assert "LANGFUSE_HOST" in err.value.render("en") and "401" in err.value.render("en")
    assert langfuse.rejected_auth >= 1 and not langfuse.datasets


def test_missing_keys_and_unknown_dataset_say_how_to_fix(
    langfuse: LangfuseStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError) as err:
        pull_dataset(load_settings(), "nope")
    assert "nope" in err.value.render("en")
    monkeypatch.delenv("LANGFUSE_PUBLIC_KEY")
    with pytest.raises(ConfigError) as err2:
        pull_dataset(load_settings(), "nope")
    assert "LANGFUSE_PUBLIC_KEY" in err2.value.render("ja")


def test_an_evaluation_sends_its_scores_to_langfuse_on_each_items_trace(
    langfuse: LangfuseStub, tmp_path: Path
) -> None:
    import hashlib

    from flywheel.evaluation import EvalOutput, run_evaluation
    from tests.evaluation.test_runner import ScriptedTarget, _options

    class Traced(ScriptedTarget):
        def run(self, question: str) -> EvalOutput:
            out = super().run(question)
            out.trace_id = "tr-" + hashlib.md5(question.encode()).hexdigest()
            return out

    settings = load_settings(data_dir=tmp_path, langfuse_scores=True)
    result = run_evaluation(settings, _options(Traced(), tmp_path / "r"))
    expected = {
        (hashlib.md5(i.question.encode()).hexdigest(), name)
        for i in result.items
        for name, s in i.scores.items()
        if s["value"] is not None
    }
    assert {(s["traceId"], s["name"]) for s in langfuse.scores} == expected


def test_the_cli_pushes_and_pulls(langfuse: LangfuseStub, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flywheel.cli.main import app

    runner = CliRunner()
    res = runner.invoke(app, ["datasets", "push", str(GOLDEN), "--to", "langfuse", "--name", SEED_NAME])
    assert res.exit_code == 0, res.output
    assert f"Langfuse dataset {SEED_NAME}" in res.output
    out = tmp_path / "pulled.jsonl"
    res = runner.invoke(app, ["datasets", "pull", SEED_NAME, "--from", "langfuse", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert load_dataset(out).digest == load_dataset(GOLDEN).digest  # the same items, the same version
