"""Assessments on traces: the one place the stages write them (scores from evaluation and the
online monitor, people's thumbs and review labels, their corrections)."""

from __future__ import annotations

from typing import Any

__all__ = ["assessment_values", "log_expectation", "log_feedback"]


def log_feedback(
    trace_id: str,
    name: str,
    value: Any,
    *,
    source_id: str,
    human: bool = False,
    rationale: str | None = None,
    metadata: dict[str, str] | None = None,
) -> str:
    """A feedback assessment (a score, a label, a thumbs) on ``trace_id``, from code or — with
    ``human`` — from a person; returns the assessment id. Raises what MLflow raises (the server is
    away, the trace is unknown): callers decide whether that is worth a retry."""
    import mlflow
    from mlflow.entities import AssessmentSource

    assessment = mlflow.log_feedback(
        trace_id=trace_id,
        name=name,
        value=value,
        rationale=rationale,
        source=AssessmentSource(source_type="HUMAN" if human else "CODE", source_id=source_id),
        metadata=metadata,
    )
    return str(getattr(assessment, "assessment_id", "") or "")


def log_expectation(trace_id: str, name: str, value: Any, *, source_id: str) -> str:
    """What a person says the answer should have been (an expectation, from a HUMAN source)."""
    import mlflow
    from mlflow.entities import AssessmentSource

    assessment = mlflow.log_expectation(
        trace_id=trace_id,
        name=name,
        value=value,
        source=AssessmentSource(source_type="HUMAN", source_id=source_id),
    )
    return str(getattr(assessment, "assessment_id", "") or "")


def assessment_values(trace: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A trace's feedback values by name, (people's, automated), the latest of each name winning:
    a later passing score clears an earlier failure, a second thumbs replaces the first."""
    human: dict[str, Any] = {}
    auto: dict[str, Any] = {}
    for a in sorted(getattr(trace.info, "assessments", None) or [], key=lambda a: a.create_time_ms or 0):
        fb = getattr(a, "feedback", None)
        if fb is None:
            continue
        kind = str(getattr(a.source, "source_type", ""))
        (human if kind.endswith("HUMAN") else auto)[a.name] = fb.value
    return human, auto
