"""Dataset.split: two fixed halves, balanced per kind, whatever the items' order."""

from __future__ import annotations

from pathlib import Path

from flywheel.evaluation import load_dataset

GOLDEN = Path(__file__).resolve().parents[2] / "datasets" / "flywheel-docs-golden.json"


def test_two_disjoint_balanced_halves_independent_of_order() -> None:
    ds = load_dataset(GOLDEN)
    train, test = ds.split("train"), ds.split("test")
    ids = lambda d: {i.metadata.id for i in d.items}  # noqa: E731
    assert not ids(train) & ids(test) and ids(train) | ids(test) == ids(ds)
    for kind, n in ds.counts().items():
        assert abs(train.counts().get(kind, 0) - test.counts().get(kind, 0)) <= n % 2
    shuffled = ds.model_copy(update={"items": list(reversed(ds.items))})
    assert ids(shuffled.split("train")) == ids(train)
