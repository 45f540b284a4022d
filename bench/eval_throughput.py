"""Evaluation throughput: 200 items, a stub target with a fixed 100 ms latency, concurrency 16.

Ideal wall time is 200 x 0.1 s / 16 = 1.25 s. Measured in the same run: flywheel's runner (with an
MLflow run, metrics and results artifact) and plain ``mlflow.genai.evaluate`` on the same workload
(predict_fn sleeping 100 ms, equivalent code scorers, MLFLOW_GENAI_EVAL_MAX_WORKERS=16), both on a
SQLite tracking store. Writes bench/results/eval_throughput.json with summary.ratio_to_ideal and
summary.mlflow_evaluate_ratio_to_ideal. Target: ratio_to_ideal <= 1.3.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import print_table, write_result  # noqa: E402

ITEMS, LATENCY, CONCURRENCY = 200, 0.1, 16
IDEAL = ITEMS * LATENCY / CONCURRENCY


class StubTarget:
    spec = "stub-100ms"
    identity = {"model_uri": "stub"}  # noqa: RUF012

    def run(self, question: str):  # type: ignore[no-untyped-def]
        from flywheel.evaluation import EvalOutput

        time.sleep(LATENCY)
        return EvalOutput(
            answer=f"An answer about {question} [1].",
            sources=[{"n": 1, "source": "a.md"}],
            tools_called=["doc_search"],
            search_queries=[question],
            latency_ms=LATENCY * 1000,
        )


def dataset():  # type: ignore[no-untyped-def]
    from flywheel.evaluation import Dataset, GoldenItem

    items = [
        GoldenItem.model_validate(
            {
                "input": {"question": f"question number {n}"},
                "expected_output": {"trajectory": ["doc_search"], "search_term": f"question {n}"},
                "metadata": {"id": f"q{n:03d}", "kind": "happy_path", "source": "a.md"},
            }
        )
        for n in range(ITEMS)
    ]
    return Dataset(name="throughput", items=items)


def ours(tracking_uri: str, tmp: str) -> float:
    from flywheel.config import load_settings
    from flywheel.evaluation import EvalOptions, make_scorer, run_evaluation

    settings = load_settings(data_dir=tmp, mlflow_tracking_uri=tracking_uri, experiment="bench-eval")
    scorers = [
        make_scorer(n)
        for n in ("trajectory", "search_term", "citations", "response_length", "response_quality")
    ]
    t0 = time.perf_counter()
    result = run_evaluation(
        settings,
        EvalOptions(
            dataset(), StubTarget(), scorers, concurrency=CONCURRENCY, results_dir=Path(tmp) / "results"
        ),
    )
    wall = time.perf_counter() - t0
    assert len(result.items) == ITEMS and result.metrics["trajectory"] == 1.0
    return wall


def mlflow_evaluate(tracking_uri: str) -> float:
    import mlflow
    from mlflow.genai.scorers import scorer

    os.environ["MLFLOW_GENAI_EVAL_MAX_WORKERS"] = str(CONCURRENCY)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("bench-eval-mlflow")

    def predict_fn(question: str) -> str:
        time.sleep(LATENCY)
        return f"An answer about {question} [1]."

    @scorer
    def response_length(outputs) -> float:  # type: ignore[no-untyped-def]
        return 1.0 if 20 <= len(outputs) <= 2000 else 0.0

    @scorer
    def cites(outputs) -> float:  # type: ignore[no-untyped-def]
        return 1.0 if "[1]" in outputs else 0.0

    data = [
        {"inputs": {"question": f"question number {n}"}, "expectations": {"search_term": f"question {n}"}}
        for n in range(ITEMS)
    ]
    t0 = time.perf_counter()
    mlflow.genai.evaluate(data=data, predict_fn=predict_fn, scorers=[response_length, cites])
    return time.perf_counter() - t0


def main() -> None:
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        import mlflow

        # create and migrate the SQLite store first (seconds, once): neither arm should pay for it
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment("warm-up")
        ours_s = ours(uri, tmp)
        mlflow_s = mlflow_evaluate(uri)
    summary = {
        "ratio_to_ideal": round(ours_s / IDEAL, 3),
        "mlflow_evaluate_ratio_to_ideal": round(mlflow_s / IDEAL, 3),
        "wall_seconds": round(ours_s, 3),
        "mlflow_evaluate_wall_seconds": round(mlflow_s, 3),
        "ideal_seconds": IDEAL,
        "items": ITEMS,
        "target_latency_ms": LATENCY * 1000,
        "concurrency": CONCURRENCY,
        "target": {"ratio_to_ideal": "<= 1.3"},
    }
    print_table(
        f"{ITEMS} items x {LATENCY * 1000:.0f} ms at concurrency {CONCURRENCY} (ideal {IDEAL:.2f} s)",
        [
            ("flywheel eval runner", f"{ours_s:.2f}", f"{summary['ratio_to_ideal']:.2f}"),
            ("mlflow.genai.evaluate", f"{mlflow_s:.2f}", f"{summary['mlflow_evaluate_ratio_to_ideal']:.2f}"),
        ],
        ("runner", "seconds", "x ideal"),
    )
    print(f"wrote {write_result('eval_throughput', summary, {})}")


if __name__ == "__main__":
    main()
