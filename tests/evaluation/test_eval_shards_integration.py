"""`flywheel eval --shard I/N` on two workers, then `--merge N`, on the real stack: the shards
split the items without overlap, the merge finds every item once and logs one run whose metrics
equal an unsharded evaluation's; a merge with a shard missing says which."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flywheel.config import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _eval(runner: CliRunner, dataset: Path, *extra: str) -> dict:
    from flywheel.cli.main import app

    args = ["eval", "--dataset", str(dataset), "--target", "local", "--set", "policy=grounded"]
    args += ["--scorer", "citations", "--scorer", "refusal", "--scorer", "abstention", "--json", *extra]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.output[result.output.index("{\n") :])


def test_shards_merge_into_one_run_equal_to_an_unsharded_one(
    stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from flywheel.errors import InputError
    from flywheel.evaluation import load_dataset
    from flywheel.evaluation._shards import shard_dataset

    for key, value in stack.to_env().items():
        monkeypatch.setenv(key, value)
    ds = load_dataset(ROOT / "datasets" / "flywheel-docs-golden.json").take(
        {"happy_path": 4, "adversarial": 1, "out_of_scope": 1}
    )
    path = tmp_path / "small.json"
    path.write_text(json.dumps([i.model_dump(mode="json") for i in ds.items]))
    parts = [shard_dataset(ds, i, 2) for i in range(2)]
    ids = [sorted(i.metadata.id for i in p.items) for p in parts]
    assert all(ids) and not set(ids[0]) & set(ids[1]) and len(ids[0]) + len(ids[1]) == len(ds.items)

    runner = CliRunner()
    _eval(runner, path, "--shard", "0/2")
    with pytest.raises(InputError, match="Shards 1/2 of evaluation"):
        _eval(runner, path, "--merge", "2")
    _eval(runner, path, "--shard", "1/2")
    merged = _eval(runner, path, "--merge", "2")
    whole = _eval(runner, path, "--fresh")
    for metric in ("items", "citations", "refusal", "abstention"):
        assert merged["metrics"][metric] == whole["metrics"][metric], metric
    run = MlflowClient(stack.tracking_uri).get_run(merged["run_id"])
    assert (
        run.data.tags["flywheel.merged_shards"] == "2"
        and len(run.data.tags["flywheel.shard_runs"].split(",")) == 2
    )
    assert run.data.params["items"] == str(len(ds.items))
    assert run.data.params["dataset_digest"] == ds.digest
