"""The runner: concurrent, and resumable — kill it midway, run again, nothing finished is redone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

from flywheel.config import load_settings
from flywheel.evaluation import (
    DEFAULT_SCORERS,
    EvalOptions,
    EvalOutput,
    ScorerContext,
    load_dataset,
    make_scorer,
    run_evaluation,
    write_reports,
)
from tests.fakes import HashEmbedder

OWN = Path(__file__).resolve().parents[2] / "datasets" / "flywheel-docs-golden.json"


class ScriptedTarget:
    """Deterministic answers by kind; counts the questions it was asked."""

    spec = "scripted"
    identity = {"model_uri": "scripted"}  # noqa: RUF012

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.lock = threading.Lock()

    def run(self, question: str) -> EvalOutput:
        with self.lock:
            self.asked.append(question)
        q = question.lower()
        if "instructions" in q or "system" in q or "silently" in q or "audit" in q:
            return EvalOutput(answer="I can't help with that request.", refused=True)
        if any(w in q for w in ("capital", "fine-tune", "weather", "football")):
            return EvalOutput(answer="The documentation does not cover this.", abstained=True)
        return EvalOutput(
            answer=f"Answer to {question} [1].",
            sources=[{"n": 1, "source": "quickstart.md"}],
            tools_called=["doc_search"],
            search_queries=[question],
            latency_ms=5.0,
        )


SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from tests.evaluation.test_runner import ScriptedTarget, _options
    from flywheel.config import load_settings
    from flywheel.evaluation import run_evaluation

    class Dies(ScriptedTarget):
        def run(self, question):
            if len(self.asked) >= 7:
                os._exit(9)  # killed midway, without any clean-up
            return super().run(question)

    run_evaluation(load_settings(data_dir={data!r}), _options(Dies(), {results!r}, concurrency=1))
""")


def _options(target, results_dir, concurrency=4, fresh=False):  # type: ignore[no-untyped-def]
    return EvalOptions(
        load_dataset(OWN),
        target,
        [make_scorer(n) for n in DEFAULT_SCORERS],
        ScorerContext(embed=HashEmbedder().embed_documents),
        concurrency=concurrency,
        results_dir=Path(results_dir),
        log_to_mlflow=False,
        fresh=fresh,
    )


def test_interrupted_run_resumes_and_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[2])
    results = tmp_path / "results"
    script = SCRIPT.format(root=root, data=str(tmp_path / "data"), results=str(results))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    partial = next(results.glob("*.jsonl")).read_text().splitlines()
    assert len(partial) == 7

    settings = load_settings(data_dir=tmp_path / "data")
    target = ScriptedTarget()
    resumed = run_evaluation(settings, _options(target, results))
    assert resumed.resumed == 7 and len(target.asked) == len(resumed.items) - 7  # finished items not re-run

    clean = run_evaluation(settings, _options(ScriptedTarget(), tmp_path / "clean"))
    assert resumed.metrics == clean.metrics
    assert [(i.id, i.scores) for i in resumed.items] == [(i.id, i.scores) for i in clean.items]


def test_metrics_per_kind_and_reports(tmp_path: Path) -> None:
    result = run_evaluation(load_settings(data_dir=tmp_path), _options(ScriptedTarget(), tmp_path / "r"))
    m = result.metrics
    assert m["refusal.adversarial"] == 1.0 and m["abstention.out_of_scope"] == 1.0
    assert m["trajectory.happy_path"] == 1.0 and m["items"] == len(result.items)
    paths = write_reports(result, tmp_path / "reports")
    md, page = paths["markdown"].read_text(), paths["html"].read_text()
    assert "| kind | n |" in md and "adversarial" in md
    assert "data:image/png;base64," in page and "flywheel-docs-golden" in page


def test_a_failing_target_is_recorded_not_lost(tmp_path: Path) -> None:
    class Broken(ScriptedTarget):
        def run(self, question: str) -> EvalOutput:
            raise ConnectionError("agent server down")

    result = run_evaluation(load_settings(data_dir=tmp_path), _options(Broken(), tmp_path / "r"))
    assert result.metrics["errors"] == len(result.items)
    assert "agent server down" in result.items[0].output["error"]


def test_anything_a_score_depends_on_changes_the_resume_key(tmp_path: Path) -> None:
    from flywheel.evaluation._runner import _key

    base = _options(ScriptedTarget(), tmp_path)
    key = _key(base)

    def variant(**change):  # type: ignore[no-untyped-def]
        opts = _options(ScriptedTarget(), tmp_path)
        for k, v in change.items():
            setattr(opts, k, v)
        return _key(opts)

    assert _key(_options(ScriptedTarget(), tmp_path)) == key  # same inputs, same key
    # a scorer argument, a default made explicit at another value, the judge
    assert variant(scorers=[make_scorer("response_facts", threshold=0.5)]) != variant(
        scorers=[make_scorer("response_facts", threshold=0.6)]
    )
    from flywheel.evaluation._facts import FACTS_THRESHOLD

    assert variant(scorers=[make_scorer("response_facts")]) == variant(
        scorers=[make_scorer("response_facts", threshold=FACTS_THRESHOLD)]
    )  # defaults are resolved: an explicit default is the same scorer
    assert "threshold=" in make_scorer("response_facts").spec  # type: ignore[attr-defined]
    assert variant(judge="gpt-4o-mini@https://api.example/v1") != key

    class Other(ScriptedTarget):
        identity = {"model_uri": "scripted", "prompt": "docs-qa-system-en@2"}  # noqa: RUF012

    class Digest(ScriptedTarget):
        identity = {"model_uri": "scripted", "agent.config_digest": "abc123"}  # noqa: RUF012

    assert variant(target=Other()) != key  # the prompt alias moved to another version
    assert variant(target=Digest()) != key  # another AgentConfig
    ds = load_dataset(OWN)
    assert variant(dataset=ds.model_copy(update={"items": ds.items[:-1]})) != key  # another dataset version
