"""A large evaluation split over workers and merged into one MLflow run.

``flywheel eval … --shard I/N`` evaluates the items whose id hashes to I (of N) — an ordinary
evaluation of a sub-dataset: concurrent, resumable from its own results file, its own MLflow run —
tagged with the evaluation's *group* (the resume key of the whole evaluation: dataset digest,
target, scorers, judge) and its shard. ``flywheel eval … --merge N`` finds the latest finished run of
every shard of the group, reads their per-item results (the runs' ``eval/`` artifacts, so the shards
may have run on any machines), checks that every item of the dataset is there exactly once, and logs
one run with the whole dataset's metrics, parameters, identity and reports — the same as one
worker would have produced. Run the merge again at any time: it reads, it never re-runs an item.

The shards are pods of a Kubernetes Indexed Job (``deploy/k8s/jobs/eval-shards.yaml``: the index is
the shard), or any N processes.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from flywheel.config import Settings
from flywheel.errors import InputError
from flywheel.evaluation._dataset import Dataset
from flywheel.evaluation._runner import EvalOptions, EvalResult, ItemResult, _log_run, aggregate
from flywheel.evaluation._scorers import scorer_spec

__all__ = [
    "GROUP_TAG",
    "SHARD_TAG",
    "eval_group",
    "merge_shards",
    "parse_shard",
    "shard_dataset",
    "shard_of",
    "shard_tags",
    "target_stub",
]

GROUP_TAG = "flywheel.eval_group"
SHARD_TAG = "flywheel.shard"


def shard_of(item_id: str, shards: int) -> int:
    return int(hashlib.sha256(b"shard:" + item_id.encode()).hexdigest()[:8], 16) % shards


def parse_shard(value: str) -> tuple[int, int]:
    """``I/N`` → (I, N) with 0 <= I < N."""
    index, sep, count = value.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or not 0 <= i < n:
        raise InputError(
            "option_value", option="--shard", value=value, expected="I/N with 0 <= I < N, e.g. 0/4"
        )
    return i, n


def shard_dataset(dataset: Dataset, index: int, shards: int) -> Dataset:
    """The items of shard ``index`` (by a hash of their id: stable across machines and reruns)."""
    items = [i for i in dataset.items if shard_of(i.metadata.id or i.question, shards) == index]
    return Dataset(name=dataset.name, items=items)


def eval_group(options: EvalOptions, variant: str = "") -> str:
    """The whole evaluation's key, the same in every shard and in the merge: the full dataset's
    digest, the target as given (with ``variant``: e.g. its --set overrides), the scorers, the judge
    — not what the target reports about itself, which the merge never asks."""
    blob = json.dumps(
        [
            options.dataset.digest,
            options.target.spec,
            variant,
            [scorer_spec(s) for s in options.scorers],
            options.judge or "none",
        ]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def shard_tags(group: str, index: int, shards: int) -> dict[str, str]:
    return {GROUP_TAG: group, SHARD_TAG: f"{index}/{shards}"}


def merge_shards(settings: Settings, options: EvalOptions, shards: int, group: str) -> EvalResult:
    """One run for the whole evaluation ``group`` from the finished runs of its ``shards`` shards."""
    from flywheel.evaluation._runner import _create_run
    from flywheel.tracking import client as tracking_client

    client = tracking_client(settings)
    exp = client.get_experiment_by_name(settings.experiment)
    runs = (
        client.search_runs(
            [exp.experiment_id],
            f"tags.`{GROUP_TAG}` = '{group}' AND attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1000,
        )
        if exp
        else []
    )
    latest: dict[str, Any] = {}
    for run in runs:  # newest first: a shard run again replaces its earlier run
        shard = run.data.tags.get(SHARD_TAG, "")
        if shard.endswith(f"/{shards}") and shard not in latest:
            latest[shard] = run
    missing = [f"{i}/{shards}" for i in range(shards) if f"{i}/{shards}" not in latest]
    if missing:
        raise InputError("eval_shards_missing", missing=", ".join(missing), group=group)
    items: dict[str, ItemResult] = {}
    with tempfile.TemporaryDirectory(prefix="flywheel-merge-") as tmp:
        for shard, run in sorted(latest.items()):
            folder = Path(
                client.download_artifacts(run.info.run_id, "eval", str(Path(tmp) / shard.replace("/", "of")))
            )
            for path in folder.glob("*.jsonl"):
                for line in path.read_text(encoding="utf-8").splitlines():
                    try:
                        r = ItemResult.from_json(json.loads(line))
                    except (ValueError, TypeError):
                        continue
                    items[r.id] = r
    wanted = [i.metadata.id or "" for i in options.dataset.items]
    absent = [i for i in wanted if i not in items]
    if absent:
        raise InputError("eval_shards_incomplete", n=len(absent), first=absent[0], group=group)
    finished = [items[i] for i in wanted]
    first = next(iter(latest.values()))
    results_dir = options.results_dir or settings.data_path / "eval"
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{options.dataset.name}-{group}.jsonl"
    path.write_text(
        "".join(json.dumps(r.__dict__, ensure_ascii=False) + "\n" for r in finished), encoding="utf-8"
    )
    identity = {
        k: v
        for k, v in first.data.tags.items()
        if not k.startswith("mlflow.") and k not in (GROUP_TAG, SHARD_TAG, "flywheel.dataset_id")
    }
    run_id = _create_run(settings, options.run_name or f"eval-{options.dataset.name}", options.parent_run_id)
    result = EvalResult(
        options.dataset.name,
        options.dataset.digest,
        options.target.spec,
        finished,
        aggregate(finished),
        {},
        path,
        run_id,
        resumed=len(finished),
    )
    merged = EvalOptions(
        options.dataset,
        options.target,
        options.scorers,
        options.context,
        options.concurrency,
        results_dir,
        options.run_name,
        judge=options.judge,
        parent_run_id=options.parent_run_id,
        tags={
            **identity,
            **options.tags,
            GROUP_TAG: group,
            "flywheel.merged_shards": str(shards),
            "flywheel.shard_runs": ",".join(r.info.run_id for _, r in sorted(latest.items()))[:5000],
        },
    )
    _log_run(settings, merged, result)
    return result


def target_stub(spec: str) -> Any:
    """What a merge needs of the target: its spec (part of the evaluation's key) and no identity of
    its own (the shards' runs recorded what the target reported)."""
    return SimpleNamespace(spec=spec, identity={}, trace_tags={})
