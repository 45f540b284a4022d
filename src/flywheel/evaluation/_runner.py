"""The evaluation runner: concurrent, resumable, traced, one MLflow run per evaluation.

Every finished item is appended to a results file keyed by (dataset digest, target, scorers); a rerun
after an interruption skips what is in it, so the final result equals an uninterrupted run. We do not
use ``mlflow.genai.evaluate`` for the loop: it has no resumption and no bound on concurrency we can
set per run (bench/eval_throughput.py measures both on the same workload).
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.config import Settings
from flywheel.evaluation._dataset import KINDS, Dataset, GoldenItem
from flywheel.evaluation._scorers import EvalOutput, Scorer, ScorerContext, scorer_spec
from flywheel.evaluation._targets import Target
from flywheel.tracking import VersionIdentity, git_commit

__all__ = [
    "EvalOptions",
    "EvalResult",
    "ItemResult",
    "aggregate",
    "run_evaluation",
    "run_identity",
    "version_identity",
]

log = logging.getLogger("flywheel.eval")
Progress = Callable[[int, int, "ItemResult"], None]


@dataclass
class EvalOptions:
    dataset: Dataset
    target: Target
    scorers: list[Scorer]
    context: ScorerContext = field(default_factory=ScorerContext)
    concurrency: int = 4
    results_dir: Path | None = None
    run_name: str | None = None
    log_to_mlflow: bool = True
    fresh: bool = False  # ignore earlier partial results
    judge: str | None = None  # the judge model (name@url) when the context has a judge
    parent_run_id: str | None = None  # a tune's parent run: this evaluation is one of its trials
    tags: dict[str, str] = field(default_factory=dict)  # extra run tags (e.g. the trial's parameters)


@dataclass
class ItemResult:
    id: str
    kind: str
    question: str
    output: dict[str, Any]
    scores: dict[str, dict[str, Any]]  # scorer → {"value": float|None, "rationale": str}
    seconds: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ItemResult:
        return cls(**data)


@dataclass
class EvalResult:
    dataset: str
    digest: str
    target: str
    items: list[ItemResult]
    metrics: dict[str, float]
    identity: dict[str, str]
    results_path: Path
    run_id: str | None = None
    resumed: int = 0
    seconds: float = 0.0


def run_identity(options: EvalOptions) -> dict[str, str]:
    """Everything a score depends on: dataset digest, target (its AgentConfig digest, prompt name and
    version, model), scorers with their arguments, and the judge. The resume key is its digest: change
    any of these and the rerun recomputes instead of reusing old scores."""
    return {
        "dataset_digest": options.dataset.digest,
        "target": options.target.spec,
        **{f"target.{k}": str(v) for k, v in sorted(options.target.identity.items())},
        "scorers": ";".join(scorer_spec(s) for s in options.scorers),
        "judge": options.judge or "none",
    }


def version_identity(result: EvalResult, options: EvalOptions) -> VersionIdentity:
    """The evaluation's VersionIdentity: what the target reported (for an agent server, its own
    config digest, prompt, LLM and git commit) plus the dataset and the scorers."""
    return VersionIdentity.from_mapping(
        {"git_commit": git_commit(), **result.identity},
        dataset=result.dataset,
        dataset_digest=result.digest,
        scorers=";".join(scorer_spec(s) for s in options.scorers),
    )


def _key(options: EvalOptions) -> str:
    blob = json.dumps(sorted(run_identity(options).items()))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _score(item: GoldenItem, out: EvalOutput, scorers: list[Scorer], ctx: ScorerContext) -> dict[str, dict]:
    scores = {}
    for scorer in scorers:
        try:
            s = scorer(item, out, ctx)
            scores[scorer.name] = {"value": s.value, "rationale": s.rationale}
        except Exception as exc:  # a broken scorer must not lose the item
            scores[scorer.name] = {"value": None, "rationale": f"scorer error: {exc!r}"[:300]}
    return scores


def aggregate(items: list[ItemResult]) -> dict[str, float]:
    """Mean of every scorer over the items it applies to, overall and per kind; plus counts."""
    metrics: dict[str, float] = {
        "items": float(len(items)),
        "errors": float(sum(1 for i in items if i.output.get("error"))),
    }
    names = sorted({n for i in items for n in i.scores})
    for name in names:
        vals = [i.scores[name]["value"] for i in items if i.scores.get(name, {}).get("value") is not None]
        if vals:
            metrics[name] = round(sum(vals) / len(vals), 4)
        for kind in KINDS:
            kv = [
                i.scores[name]["value"]
                for i in items
                if i.kind == kind and i.scores.get(name, {}).get("value") is not None
            ]
            if kv:
                metrics[f"{name}.{kind}"] = round(sum(kv) / len(kv), 4)
    lat = sorted(i.output.get("latency_ms", 0.0) for i in items)
    if lat:
        metrics["latency_p50_ms"] = round(lat[len(lat) // 2], 1)
        metrics["latency_p95_ms"] = round(lat[min(len(lat) - 1, int(len(lat) * 0.95))], 1)
    return metrics


def _log_assessments(result: ItemResult, run_id: str | None) -> None:
    from flywheel.tracking import log_feedback

    trace_id = result.output.get("trace_id")
    if not trace_id:
        return
    for name, s in result.scores.items():
        if s["value"] is None:
            continue
        try:
            log_feedback(
                trace_id,
                name,
                s["value"],
                source_id="flywheel.eval",
                rationale=s["rationale"],
                metadata={"eval_run_id": run_id or "", "item_id": result.id},
            )
        except Exception as exc:  # the trace may live on another server (HTTP targets)
            log.debug("assessment %s on %s not logged: %s", name, trace_id, exc)
            return


def run_evaluation(settings: Settings, options: EvalOptions, progress: Progress | None = None) -> EvalResult:
    """Run (or resume) an evaluation; returns per-item results and aggregate metrics."""
    t0 = time.perf_counter()
    ds = options.dataset
    results_dir = options.results_dir or settings.data_path / "eval"
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{ds.name}-{_key(options)}.jsonl"
    if options.fresh:
        path.unlink(missing_ok=True)
    done: dict[str, ItemResult] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = ItemResult.from_json(json.loads(line))
                done[r.id] = r
            except (ValueError, TypeError):
                continue  # a line cut by the interruption: that item runs again
    resumed = len(done)
    todo = [i for i in ds.items if i.metadata.id not in done]
    lock = threading.Lock()
    if hasattr(options.target, "trace_tags"):  # every trace says which dataset version produced it
        options.target.trace_tags.update({"dataset": ds.name, "dataset_digest": ds.digest})
    tracking = options.log_to_mlflow and _tracking_ready(settings)
    background = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="eval-mlflow")
    run_future: cf.Future[str | None] = cf.Future()
    run_future.set_result(None)
    if tracking:
        # the MLflow run is created while the first items already run (it costs a few round trips)
        run_future = background.submit(
            _create_run, settings, options.run_name or f"eval-{ds.name}", options.parent_run_id
        )

    def one(item: GoldenItem) -> ItemResult:
        start = time.perf_counter()
        try:
            out = options.target.run(item.question)
        except Exception as exc:  # the target failed on this item: scored as an error, not lost
            out = EvalOutput(error=f"{exc.__class__.__name__}: {exc}"[:500])
        res = ItemResult(
            item.metadata.id or "",
            item.kind,
            item.question,
            dataclasses.asdict(out),
            _score(item, out, options.scorers, options.context),
            time.perf_counter() - start,
        )
        with lock, open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(dataclasses.asdict(res), ensure_ascii=False) + "\n")
        if tracking:
            _log_assessments(res, run_future.result())
        return res

    finished = list(done.values())
    try:
        with cf.ThreadPoolExecutor(max_workers=max(1, options.concurrency)) as pool:
            futures = [pool.submit(one, item) for item in todo]
            for n, fut in enumerate(cf.as_completed(futures), resumed + 1):
                res = fut.result()
                finished.append(res)
                if progress:
                    progress(n, len(ds.items), res)
        order = {i.metadata.id: n for n, i in enumerate(ds.items)}
        finished.sort(key=lambda r: order.get(r.id, 0))
        metrics = aggregate(finished)
        result = EvalResult(
            ds.name,
            ds.digest,
            options.target.spec,
            finished,
            metrics,
            dict(options.target.identity),
            path,
            run_future.result(),
            resumed,
            0.0,
        )
        if tracking:
            _log_run(settings, options, result)
        if settings.langfuse_scores:
            _scores_to_langfuse(settings, finished)
    finally:
        background.shutdown(wait=False)
    result.seconds = time.perf_counter() - t0
    return result


def _scores_to_langfuse(settings: Settings, results: list[ItemResult]) -> None:
    """Each item's scores as Langfuse scores on its trace (exported there with
    FLYWHEEL_TRACE_EXPORT=langfuse); a failure is logged, the evaluation's record stands."""
    from flywheel.evaluation._langfuse import LangfuseScore, push_scores

    scores = [
        LangfuseScore(r.output.get("trace_id") or "", name, float(s["value"]), s.get("rationale") or None)
        for r in results
        for name, s in r.scores.items()
        if s["value"] is not None
    ]
    try:
        n = push_scores(settings, scores)
        log.info("%d scores sent to Langfuse", n)
    except Exception as exc:
        log.warning("evaluation scores not sent to Langfuse: %s", exc)


def _tracking_ready(settings: Settings) -> bool:
    from flywheel.tracking import setup_tracing

    return setup_tracing(settings)


def _create_run(settings: Settings, name: str, parent_run_id: str | None = None) -> str:
    from flywheel.tracking import client as tracking_client

    client = tracking_client(settings)
    exp = client.get_experiment_by_name(settings.experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(settings.experiment)
    tags = {"mlflow.parentRunId": parent_run_id} if parent_run_id else None
    return client.create_run(exp_id, run_name=name, tags=tags).info.run_id


def _log_run(settings: Settings, options: EvalOptions, result: EvalResult) -> None:
    """Params, tags and metrics in one batch, the per-item results as an artifact, then close the run."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    commit = git_commit()
    params = {
        "dataset": result.dataset,
        "dataset_digest": result.digest,
        "target": result.target,
        "scorers": ",".join(s.name for s in options.scorers),
        "scorer_specs": ";".join(scorer_spec(s) for s in options.scorers),
        "concurrency": options.concurrency,
        "items": len(result.items),
        "judge": options.judge or (settings.judge_model if settings.judge_base_url else "none"),
        "resume_key": _key(options),
    }
    tags = {
        "flywheel.kind": "evaluation",
        "flywheel.git_commit": commit,
        **{k: str(v)[:250] for k, v in result.identity.items()},
        **version_identity(result, options).tags(),
        **options.tags,
    }
    now = int(time.time() * 1000)
    client = MlflowClient(settings.tracking_uri)
    run_id = result.run_id
    assert run_id
    client.log_batch(
        run_id,
        metrics=[Metric(k.replace("@", "_"), float(v), now, 0) for k, v in result.metrics.items()],
        params=[Param(k, str(v)[:500]) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    client.log_artifact(run_id, str(result.results_path), artifact_path="eval")
    try:  # the dataset itself, versioned by its digest, as an MLflow evaluation dataset
        from flywheel.evaluation._dataset import register_dataset

        dataset_id = register_dataset(options.dataset, client.get_run(run_id).info.experiment_id)
        client.set_tag(run_id, "flywheel.dataset_id", dataset_id)
        result.identity["dataset_id"] = dataset_id
    except Exception as exc:  # an older server without evaluation datasets: the digest is still logged
        log.warning(
            "the dataset was not stored as an MLflow evaluation dataset: %s", str(exc).splitlines()[0][:200]
        )
    client.set_terminated(run_id)
