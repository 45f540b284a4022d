"""Production traces into golden datasets: a reviewed trace becomes a golden item.

The item's question is the trace's; ``expected_output.response_facts`` are the sentences of the
reviewer's corrected answer (or of the answer itself when the reviewer approved it), the trajectory
is the tools the trace used, ``metadata.source`` the first source it cited and
``metadata.source_trace`` the trace id. Additions are de-duplicated (same trace, or the same
question once normalized), saved to the dataset file and registered in MLflow as a new dataset
version ``NAME@DIGEST``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.config import Settings
from flywheel.evaluation import Dataset, GoldenItem, load_dataset, register_dataset, save_dataset
from flywheel.knowledge import strip_citations

__all__ = ["DatasetAddition", "add_to_dataset", "correction_of", "item_from_trace"]


def _norm(question: str) -> str:
    return re.sub(r"\W+", " ", question.lower()).strip()


def correction_of(trace: Any) -> str | None:
    """A reviewer's corrected answer stored on the trace (the expectation ``expected_response``)."""
    corrected = None
    for a in trace.info.assessments or []:
        expectation = getattr(a, "expectation", None)
        if a.name == "expected_response" and expectation is not None:
            corrected = str(expectation.value)
    return corrected


def item_from_trace(trace: Any, corrected: str | None = None, kind: str | None = None) -> GoldenItem:
    from flywheel.evaluation import answer_sentences
    from flywheel.monitoring._online import trace_to_output

    question, out = trace_to_output(trace)
    if corrected is None:  # the reviewer's correction stored on the trace, if any
        corrected = correction_of(trace)
    reference = corrected if corrected is not None else out.answer
    facts = [strip_citations(s).strip() for s in answer_sentences(reference)]
    if kind is None:  # a corrected answer says the question is answerable, even if the agent abstained
        kind = (
            "adversarial"
            if out.refused and corrected is None
            else "out_of_scope"
            if out.abstained and corrected is None
            else "happy_path"
        )
    expected: dict[str, Any] = {}
    if kind in ("happy_path", "edge_case"):
        expected["response_facts"] = [f for f in facts if f][:8]
        if out.tools_called:
            expected["trajectory"] = list(dict.fromkeys(out.tools_called))
    source = next((s.get("source") for s in out.sources if s.get("source")), None)
    tid = trace.info.trace_id
    return GoldenItem.model_validate(
        {
            "input": {"question": question},
            "expected_output": expected,
            "metadata": {
                "id": f"prod-{tid.removeprefix('tr-')[:12]}",
                "kind": kind,
                "source": source,
                "source_trace": tid,
                "corrected": corrected is not None,
            },
        }
    )


@dataclass
class DatasetAddition:
    path: Path
    version: str  # NAME@DIGEST, the dataset version in MLflow
    dataset_id: str | None
    added: list[str]  # trace ids
    duplicates: list[str]
    items: int


def add_to_dataset(
    settings: Settings, path: Path, items: list[GoldenItem], name: str | None = None, register: bool = True
) -> DatasetAddition:
    """Append ``items`` (skipping duplicates) to the dataset file, creating it when missing; register
    the result as a new MLflow dataset version when something was added."""
    path = Path(path)
    ds = load_dataset(path) if path.exists() else Dataset(name=name or path.stem, items=[])
    traces = {getattr(i.metadata, "source_trace", None) for i in ds.items} - {None}
    questions = {_norm(i.question) for i in ds.items}
    added, dups = [], []
    for item in items:
        tid = getattr(item.metadata, "source_trace", None) or ""
        if tid in traces or _norm(item.question) in questions:
            dups.append(tid)
            continue
        ds.items.append(item)
        traces.add(tid)
        questions.add(_norm(item.question))
        added.append(tid)
    dataset_id = None
    if added:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_dataset(ds, path)
        if register:
            import mlflow

            from flywheel.tracking import use

            use(settings)
            exp = mlflow.set_experiment(settings.experiment)
            dataset_id = register_dataset(ds, exp.experiment_id)
    return DatasetAddition(path, f"{ds.name}@{ds.digest}", dataset_id, added, dups, len(ds.items))
