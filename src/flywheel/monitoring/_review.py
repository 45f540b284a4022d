"""The annotation queue: a small web app (``flywheel review``) where people label production traces.

Queues are filters over the experiment's recent traces:

- ``thumbs-down``: a HUMAN ``user_feedback`` of False (the chat page's "Not helpful")
- ``low-score``: any ``online/*`` assessment below its pass mark (0.5, or the one ``flywheel monitor
  calibrate`` fitted) (from ``flywheel monitor``)
- ``flagged``: traces tagged ``flagged=true``
- ``random``: a fixed 10 % sample (by trace-id hash)

Each item shows the question, the answer, the retrieved excerpts and the tool calls. The reviewer
labels it with the configured score definitions (boolean, numeric, categorical), a comment and an
optional corrected answer; labels are stored as HUMAN assessments ``review/<label>`` on the trace,
the correction as the expectation ``expected_response``. "Add to dataset" turns the reviewed trace
into a golden item (``_feedback``): a new dataset version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from flywheel.config import Settings
from flywheel.tracking import assessment_values

__all__ = ["DEFAULT_LABELS", "QUEUES", "build_review_app"]

PAGE = Path(__file__).with_name("review.html")
DEFAULT_LABELS: list[dict[str, Any]] = [
    {"name": "correct", "type": "boolean", "help": "Is the answer correct and supported by the docs?"},
    {"name": "helpfulness", "type": "numeric", "min": 1, "max": 5, "help": "1 useless … 5 excellent"},
    {
        "name": "issue",
        "type": "categorical",
        "options": ["none", "wrong", "incomplete", "off-topic", "unsafe", "should-refuse"],
    },
]


def _in_queue(queue: str, trace: Any, marks: dict[str, float] | None = None) -> bool:
    """Whether ``trace`` belongs in ``queue``. ``marks``: scorer → its pass mark, the calibrated
    one where `monitor calibrate` fitted one (:func:`flywheel.monitoring._calibrate.pass_marks`);
    0.5 for the others."""
    from flywheel.monitoring._online import sampled

    human, auto = assessment_values(trace)
    if queue == "thumbs-down":
        return human.get("user_feedback") is False
    if queue == "low-score":
        marks = marks or {}
        return any(
            isinstance(v, int | float)
            and not isinstance(v, bool)
            and v < marks.get(k.removeprefix("online/"), 0.5)
            for k, v in auto.items()
            if k.startswith("online/")
        )
    if queue == "flagged":
        return (trace.info.tags or {}).get("flagged") == "true"
    if queue == "random":
        return sampled(trace.info.trace_id, 0.1)
    return False


def _question_of(preview: str | None) -> str:
    """The question from a trace's request preview (the root span's inputs, as JSON)."""
    try:
        data = json.loads(preview or "")
    except ValueError:
        return (preview or "")[:200]
    return str(data.get("question", preview) if isinstance(data, dict) else preview)[:200]


QUEUES = {
    "thumbs-down": "answers a user rated “Not helpful”",
    "low-score": "answers an online scorer rated below its pass mark (0.5, or the calibrated one)",
    "flagged": "traces tagged flagged=true",
    "random": "a fixed 10 % sample of all traces",
}


class Labels(BaseModel):
    labels: dict[str, bool | float | str] = {}
    comment: str | None = None
    corrected: str | None = None
    reviewer: str = "reviewer"


class ToDataset(BaseModel):
    kind: str | None = None


def build_review_app(
    settings: Settings,
    dataset_path: Path,
    labels: list[dict[str, Any]] | None = None,
    experiment: str | None = None,
    limit: int = 500,
) -> FastAPI:
    from flywheel.monitoring._calibrate import pass_marks
    from flywheel.tracking import client as tracking_client
    from flywheel.tracking import use

    use(settings)
    client = tracking_client(settings)
    label_defs = labels or DEFAULT_LABELS
    app = FastAPI(title="flywheel review", docs_url=None, redoc_url=None)

    def experiment_id() -> str:
        exp = client.get_experiment_by_name(experiment or settings.experiment)
        if exp is None:
            raise HTTPException(404, f"no experiment named {experiment or settings.experiment}")
        return str(exp.experiment_id)

    def recent() -> list[Any]:
        return list(
            client.search_traces(
                locations=[experiment_id()],
                max_results=limit,
                order_by=["timestamp_ms DESC"],
                include_spans=False,
            )
        )

    def reviewed(trace: Any) -> bool:
        human, _ = assessment_values(trace)
        return any(k.startswith("review/") for k in human)

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/api/config")
    async def config() -> dict[str, Any]:
        return {"labels": label_defs, "queues": QUEUES, "dataset": str(dataset_path)}

    @app.get("/api/queues")
    def queues() -> list[dict[str, Any]]:
        traces = recent()
        marks = pass_marks(settings)  # read each time: `monitor calibrate` may have run since
        out = []
        for name, what in QUEUES.items():
            items = [t for t in traces if _in_queue(name, t, marks)]
            out.append({"name": name, "what": what, "total": len(items), "done": sum(map(reviewed, items))})
        return out

    @app.get("/api/queues/{name}")
    def queue(name: str) -> list[dict[str, Any]]:
        if name not in QUEUES:
            raise HTTPException(404, f"no queue {name}; queues: {', '.join(QUEUES)}")
        marks = pass_marks(settings)
        return [
            {
                "trace_id": t.info.trace_id,
                "question": _question_of(t.info.request_preview),
                "done": reviewed(t),
            }
            for t in recent()
            if _in_queue(name, t, marks)
        ]

    def get_trace(trace_id: str) -> Any:
        from flywheel.tracking import get_trace as fetch

        trace = fetch(settings, trace_id)  # an unknown id is a 404; a server away is not
        if trace is None:
            raise HTTPException(404, f"no trace {trace_id}")
        return trace

    @app.get("/api/traces/{trace_id}")
    def item(trace_id: str) -> dict[str, Any]:
        from flywheel.monitoring._online import trace_to_output

        trace = get_trace(trace_id)
        question, out = trace_to_output(trace)
        human, auto = assessment_values(trace)
        corrected = next(
            (
                str(a.expectation.value)
                for a in trace.info.assessments or []
                if a.name == "expected_response" and getattr(a, "expectation", None) is not None
            ),
            None,
        )
        return {
            "trace_id": trace_id,
            "question": question,
            "answer": out.answer,
            "refused": out.refused,
            "abstained": out.abstained,
            "sources": out.sources,
            "contexts": out.contexts,
            "tools": out.tools_called,
            "latency_ms": out.latency_ms,
            "human": human,
            "automated": auto,
            "corrected": corrected,
        }

    @app.post("/api/traces/{trace_id}/labels")
    def label(trace_id: str, body: Labels) -> dict[str, Any]:
        from flywheel.tracking import log_expectation, log_feedback

        get_trace(trace_id)
        known = {d["name"]: d for d in label_defs}
        for name in body.labels:
            if name not in known:
                raise HTTPException(400, f"unknown label {name}; labels: {', '.join(known)}")
        for name, value in body.labels.items():
            log_feedback(
                trace_id, f"review/{name}", value, source_id=body.reviewer, human=True, rationale=body.comment
            )
        if body.corrected and body.corrected.strip():
            log_expectation(trace_id, "expected_response", body.corrected.strip(), source_id=body.reviewer)
        return {"ok": True, "labels": len(body.labels), "corrected": bool(body.corrected)}

    @app.post("/api/traces/{trace_id}/dataset")
    def to_dataset(trace_id: str, body: ToDataset) -> dict[str, Any]:
        from flywheel.monitoring._feedback import add_to_dataset, item_from_trace

        golden = item_from_trace(get_trace(trace_id), kind=body.kind)
        result = add_to_dataset(settings, dataset_path, [golden])
        return {
            "version": result.version,
            "added": result.added,
            "duplicates": result.duplicates,
            "items": result.items,
            "path": str(result.path),
            "item": json.loads(golden.model_dump_json(exclude_none=True)),
        }

    return app
