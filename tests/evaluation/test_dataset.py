"""Datasets: seed JSON, JSONL and CSV round trips; validation names the item and field; digests are stable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.errors import InputError
from flywheel.evaluation import load_dataset, save_dataset

OWN = Path(__file__).resolve().parents[2] / "datasets" / "flywheel-docs-golden.json"


def test_own_golden_dataset_is_valid_and_covers_every_kind() -> None:
    ds = load_dataset(OWN)
    assert len(ds.items) >= 20
    assert set(ds.counts()) == {"happy_path", "edge_case", "adversarial", "out_of_scope"}
    docs = Path(__file__).resolve().parents[2] / "docs"
    for item in ds.items:
        if item.metadata.source:
            assert (docs / item.metadata.source).exists(), item.metadata.source


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    ds = load_dataset(OWN)
    path = save_dataset(ds, tmp_path / f"copy{suffix}")
    again = load_dataset(path, name=ds.name)
    if suffix != ".csv":  # CSV has fixed columns: extra metadata (expected_behavior…) does not survive
        assert again.digest == ds.digest
    assert [
        (i.question, i.kind, i.metadata.id, i.metadata.source, i.expected_output.response_facts)
        for i in again.items
    ] == [
        (i.question, i.kind, i.metadata.id, i.metadata.source, i.expected_output.response_facts)
        for i in ds.items
    ]


def test_digest_changes_with_content(tmp_path: Path) -> None:
    data = json.loads(OWN.read_text())
    data[0]["expected_output"]["response_facts"].append("one more fact")
    (tmp_path / "changed.json").write_text(json.dumps(data))
    assert load_dataset(tmp_path / "changed.json", name="x").digest != load_dataset(OWN, name="x").digest


@pytest.mark.parametrize(
    ("items", "needle"),
    [
        ([{"input": {"question": "ok"}}, {"input": {}}], "item 1, field 'input.question'"),
        ([{"input": {"question": "ok"}, "metadata": {"kind": "weird"}}], "item 0, field 'metadata.kind'"),
        ([{"input": {"question": "ok"}, "surprise": 1}], "item 0, field 'surprise'"),
    ],
)
def test_validation_names_item_and_field(tmp_path: Path, items: list, needle: str) -> None:
    (tmp_path / "bad.json").write_text(json.dumps(items))
    with pytest.raises(InputError) as info:
        load_dataset(tmp_path / "bad.json")
    assert needle in info.value.render("en")


def test_not_a_list_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "obj.json").write_text("{}")
    with pytest.raises(InputError):
        load_dataset(tmp_path / "obj.json")
    with pytest.raises(InputError):
        load_dataset(tmp_path / "absent.json")
