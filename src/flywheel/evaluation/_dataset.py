"""Golden datasets: the seed format (JSON list), JSONL and CSV; validation; a content digest as version.

An item: ``{"input": {"question": …}, "expected_output": {"trajectory": […], "search_term": "…",
"response_facts": […]}, "metadata": {"id": …, "kind": happy_path|edge_case|adversarial|out_of_scope,
"source": …}}``. Validation errors name the item index and the field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flywheel.errors import InputError

__all__ = ["KINDS", "Dataset", "GoldenItem", "load_dataset", "register_dataset", "save_dataset"]

KINDS = ("happy_path", "edge_case", "adversarial", "out_of_scope")
Kind = Literal["happy_path", "edge_case", "adversarial", "out_of_scope"]


class ItemInput(BaseModel):
    model_config = ConfigDict(extra="allow")
    question: str = Field(min_length=1)


class Expected(BaseModel):
    model_config = ConfigDict(extra="allow")
    trajectory: list[str] | None = None
    search_term: str | None = None
    response_facts: list[str] = Field(default_factory=list)


class ItemMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    kind: Kind = "happy_path"
    source: str | None = None


class GoldenItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input: ItemInput
    expected_output: Expected = Field(default_factory=Expected)
    metadata: ItemMeta = Field(default_factory=ItemMeta)

    @property
    def question(self) -> str:
        return self.input.question

    @property
    def kind(self) -> str:
        return self.metadata.kind


class Dataset(BaseModel):
    name: str
    items: list[GoldenItem]

    @property
    def digest(self) -> str:
        """Content digest (the dataset's version): the same items give the same digest."""
        blob = json.dumps([i.model_dump(mode="json") for i in self.items], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def take(self, per_kind: dict[str, int]) -> Dataset:
        """The first ``per_kind[kind]`` items of each kind, in dataset order (a smaller, balanced set)."""
        left = dict(per_kind)
        items = []
        for item in self.items:
            if left.get(item.kind, 0) > 0:
                items.append(item)
                left[item.kind] -= 1
        return Dataset(name=self.name, items=items)

    def split(self, part: str) -> Dataset:
        """A fixed half of the items, ``train`` or ``test``, balanced per kind: within each kind the
        items are ranked by a hash of their id and dealt alternately. What a search chooses on the
        train half is judged on the test half (a tune picks, the gate decides)."""
        if part not in ("train", "test"):
            raise ValueError(f"split part must be 'train' or 'test', not {part!r}")
        chosen: set[int] = set()
        for kind in {i.kind for i in self.items}:
            ranked = sorted(
                (n for n, i in enumerate(self.items) if i.kind == kind),
                key=lambda n: hashlib.sha256(
                    (self.items[n].metadata.id or self.items[n].question).encode()
                ).hexdigest(),
            )
            chosen |= set(ranked[0 if part == "train" else 1 :: 2])
        return Dataset(name=f"{self.name}-{part}", items=[i for n, i in enumerate(self.items) if n in chosen])

    def counts(self) -> dict[str, int]:
        return {
            k: sum(i.kind == k for i in self.items) for k in KINDS if any(i.kind == k for i in self.items)
        }


def _rows(path: Path, text: str) -> list[Any]:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError as exc:
                    raise InputError("dataset_jsonl_line", path=path, line=n, detail=exc) from exc
        return out
    if suffix == ".csv":
        out = []
        for row in csv.DictReader(io.StringIO(text)):
            facts = [f.strip() for f in (row.get("response_facts") or "").split("|") if f.strip()]
            traj = [t.strip() for t in (row.get("trajectory") or "").split("|") if t.strip()]
            out.append(
                {
                    "input": {"question": row.get("question", "")},
                    "expected_output": {
                        "response_facts": facts,
                        "trajectory": traj or None,
                        "search_term": row.get("search_term") or None,
                    },
                    "metadata": {
                        "id": row.get("id") or None,
                        "kind": row.get("kind") or "happy_path",
                        "source": row.get("source") or None,
                    },
                }
            )
        return out
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InputError("dataset_not_json", path=path, detail=exc) from exc
    if not isinstance(data, list):
        raise InputError("dataset_not_list", path=path, kind=type(data).__name__)
    return data


def load_dataset(path: str | Path, name: str | None = None) -> Dataset:
    """Read and validate a dataset file (.json seed format, .jsonl, .csv)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(
            "path_not_found", path=str(path), what={"en": "dataset", "ja": "データセット"}, cwd=Path.cwd()
        )
    items = []
    for index, raw in enumerate(_rows(p, p.read_text(encoding="utf-8"))):
        try:
            items.append(GoldenItem.model_validate(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"])
            raise InputError(
                "dataset_item",
                name=p.name,
                index=index,
                field=field,
                detail=err["msg"],
                kinds=", ".join(KINDS),
            ) from exc
    for n, item in enumerate(items):
        if item.metadata.id is None:
            item.metadata.id = f"item-{n:03d}"
    return Dataset(name=name or p.stem, items=items)


def save_dataset(dataset: Dataset, path: str | Path) -> Path:
    """Write the dataset as .json (seed format), .jsonl or .csv (facts and trajectory joined by |)."""
    p = Path(path)
    rows = [i.model_dump(mode="json", exclude_none=True) for i in dataset.items]
    if p.suffix.lower() == ".jsonl":
        p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif p.suffix.lower() == ".csv":
        with open(p, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(
                fh, ["id", "kind", "question", "response_facts", "trajectory", "search_term", "source"]
            )
            w.writeheader()
            for i in dataset.items:
                w.writerow(
                    {
                        "id": i.metadata.id,
                        "kind": i.kind,
                        "question": i.question,
                        "response_facts": "|".join(i.expected_output.response_facts),
                        "trajectory": "|".join(i.expected_output.trajectory or []),
                        "search_term": i.expected_output.search_term or "",
                        "source": i.metadata.source or "",
                    }
                )
    else:
        p.write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    return p


def register_dataset(dataset: Dataset, experiment_id: str) -> str:
    """Store the dataset as an MLflow evaluation dataset named NAME@DIGEST (once per digest); its id."""
    from mlflow.genai.datasets import create_dataset, search_datasets

    name = f"{dataset.name}@{dataset.digest}"
    found = search_datasets(filter_string=f"name = '{name}'", max_results=1)
    if found:
        return found[0].dataset_id
    created = create_dataset(
        name=name,
        experiment_id=experiment_id,
        tags={"flywheel.digest": dataset.digest, "flywheel.items": str(len(dataset.items))},
    )
    created.merge_records(
        [
            {
                "inputs": {"question": i.question},
                "expectations": {
                    k: v for k, v in i.expected_output.model_dump(exclude_none=True).items() if v
                },
                "tags": {"kind": i.kind, "id": i.metadata.id or "", "source": i.metadata.source or ""},
            }
            for i in dataset.items
        ]
    )
    return created.dataset_id
