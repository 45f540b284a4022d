"""An evaluation on the real stack: the MLflow docs corpus and its golden dataset, local agent target."""

from __future__ import annotations

from pathlib import Path

import pytest

from flywheel.agent import default_config
from flywheel.config import Settings
from flywheel.evaluation import (
    DEFAULT_SCORERS,
    AgentTarget,
    EvalOptions,
    ScorerContext,
    load_dataset,
    make_scorer,
    run_evaluation,
    write_reports,
)
from flywheel.knowledge import IngestOptions, KnowledgeBase, get_embedder, ingest
from tests.conftest import shared_or_skip

pytestmark = pytest.mark.integration


def test_mlflow_docs_evaluation_with_assessments_on_traces(stack: Settings, tmp_path: Path) -> None:
    import mlflow

    corpus = shared_or_skip("corpora", "mlflow-docs")
    golden = shared_or_skip("datasets", "mlflow-docs-golden.json")
    settings = stack.model_copy(update={"collection": "mlflow_docs", "experiment": "integration-eval"})
    ingest(settings, IngestOptions([str(corpus)]), kb=KnowledgeBase(settings))

    ds = load_dataset(golden)
    target = AgentTarget(settings, default_config(settings, max_tokens=48))  # grounded: the embedded default
    options = EvalOptions(
        ds,
        target,
        [make_scorer(n) for n in DEFAULT_SCORERS],
        ScorerContext(embed=get_embedder(settings).embed_documents),
        concurrency=4,
        results_dir=tmp_path / "results",
    )
    result = run_evaluation(settings, options)
    m = result.metrics
    assert m["items"] == len(ds.items) == 25 and m["errors"] == 0
    assert m["refusal.adversarial"] == 1.0  # the guardrail refuses all five
    assert m["abstention.out_of_scope"] >= 0.8
    assert m["trajectory.happy_path"] == 1.0
    assert m["citations.happy_path"] > 0.8
    assert m["response_facts.happy_path"] > 0.4  # the extractive answers state the facts (0.58 measured)

    paths = write_reports(result, tmp_path / "reports")
    assert paths["html"].exists() and "mlflow-docs-golden" in paths["markdown"].read_text()

    mlflow.set_tracking_uri(settings.tracking_uri)
    run = mlflow.get_run(result.run_id)
    assert run.data.params["dataset_digest"] == ds.digest
    assert run.data.tags["flywheel.dataset_id"].startswith("d-")  # stored as an MLflow evaluation dataset
    assert run.data.metrics["refusal.adversarial"] == 1.0
    mlflow.flush_trace_async_logging()
    trace_id = next(i.output["trace_id"] for i in result.items if i.kind == "happy_path")
    trace = mlflow.get_trace(trace_id)
    assert {"citations", "trajectory", "response_quality"} <= {a.name for a in trace.info.assessments}
    assert trace.info.tags["dataset_digest"] == ds.digest
