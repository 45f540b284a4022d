"""Langfuse sync: golden datasets both ways, and scores linked to their traces.

Teams that keep Langfuse as their record move datasets with ``flywheel datasets push|pull`` and see
flywheel's evaluation and online scores next to the traces flywheel exported there (see
``tracking/_export.py``: ``FLYWHEEL_TRACE_EXPORT=langfuse``). Everything goes through the official
``langfuse`` SDK; the keys come from ``LANGFUSE_PUBLIC_KEY`` / ``LANGFUSE_SECRET_KEY`` (or AWS SSM,
like every secret) and the server from ``LANGFUSE_HOST``.

Mapping: a golden item's ``input`` / ``expected_output`` / ``metadata`` are a Langfuse item's
fields of the same names; the Langfuse item id is derived from the dataset name and the item's
``metadata.id`` (else its question), so pushing twice updates instead of duplicating. A trace
exported over OTLP keeps its OpenTelemetry trace id: MLflow's ``tr-<32 hex>`` is Langfuse's
``<32 hex>``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from flywheel.errors import ConfigError, InputError, ServiceUnavailableError
from flywheel.evaluation._dataset import Dataset, GoldenItem

__all__ = [
    "LangfuseScore",
    "langfuse_client",
    "langfuse_trace_id",
    "pull_dataset",
    "push_dataset",
    "push_scores",
]

log = logging.getLogger("flywheel.langfuse")


@dataclass(frozen=True)
class LangfuseScore:
    trace_id: str  # MLflow's (tr-…) or Langfuse's own
    name: str
    value: float | str
    comment: str | None = None


def langfuse_client(settings: Any, what: str) -> Any:
    """The SDK client for the configured project; a clear error when the keys are missing. It gets
    a tracer provider of its own, so that it never takes over MLflow's or the process's."""
    pk, sk = settings.langfuse_public_key, settings.langfuse_secret_key
    if pk is None or sk is None:
        raise ConfigError("langfuse_keys", what=what)
    from langfuse import Langfuse
    from langfuse._client.resource_manager import LangfuseResourceManager
    from opentelemetry.sdk.trace import TracerProvider

    host = settings.langfuse_host.rstrip("/")
    # the SDK keeps one set of resources per public key for the process's life: one made for
    # another server (or shut down) would silently be reused
    existing = LangfuseResourceManager._instances.get(pk.get_secret_value())
    if existing is not None and (existing.base_url != host or getattr(existing, "_shutdown", False)):
        LangfuseResourceManager.reset()
    return Langfuse(
        public_key=pk.get_secret_value(),
        secret_key=sk.get_secret_value(),
        base_url=host,
        tracer_provider=TracerProvider(),
        timeout=20,
    )


def _unreachable(settings: Any, exc: Exception) -> ServiceUnavailableError:
    return ServiceUnavailableError(
        "langfuse_unreachable", url=settings.langfuse_host, detail=f"{type(exc).__name__}: {exc}"[:300]
    )


def _item_id(dataset: str, item: GoldenItem) -> str:
    key = str(item.metadata.model_dump().get("id") or item.question)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"flywheel/{dataset}/{key}"))


def push_dataset(settings: Any, dataset: Dataset, name: str | None = None) -> tuple[str, int]:
    """Create (or update) the Langfuse dataset ``name`` with every item; returns (name, items)."""
    name = name or dataset.name
    client = langfuse_client(settings, "flywheel datasets push --to langfuse")
    try:
        try:
            client.get_dataset(name, fetch_items_page_size=1)
        except Exception as exc:
            if _status(exc) != 404:
                raise
            client.create_dataset(
                name=name,
                description=f"flywheel golden dataset {dataset.name} (digest {dataset.digest})",
                metadata={"source": "flywheel", "digest": dataset.digest, "counts": dataset.counts()},
            )
        for item in dataset.items:
            client.create_dataset_item(
                dataset_name=name,
                id=_item_id(name, item),
                input=item.input.model_dump(),
                expected_output=item.expected_output.model_dump(exclude_none=True),
                metadata=item.metadata.model_dump(),
            )
    except (ConfigError, InputError):
        raise
    except Exception as exc:
        raise _unreachable(settings, exc) from exc
    return name, len(dataset.items)


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status_code", None)


def _as_question(value: Any) -> dict[str, Any]:
    """A Langfuse item's input as flywheel's ``{"question": …}``: datasets made in Langfuse's UI
    often hold a plain string, or the question under ``input`` / ``query``."""
    if isinstance(value, str):
        return {"question": value}
    if isinstance(value, dict):
        if "question" in value:
            return value
        for key in ("input", "query", "prompt"):
            if isinstance(value.get(key), str):
                return {**{k: v for k, v in value.items() if k != key}, "question": value[key]}
    return {"question": value}


def pull_dataset(settings: Any, name: str) -> Dataset:
    """The Langfuse dataset ``name`` as a flywheel golden dataset (validated item by item)."""
    client = langfuse_client(settings, "flywheel datasets pull --from langfuse")
    try:
        remote = client.get_dataset(name)
    except Exception as exc:
        if _status(exc) == 404:
            raise InputError("langfuse_no_dataset", name=name, url=settings.langfuse_host) from exc
        raise _unreachable(settings, exc) from exc
    items = []
    for i, item in enumerate(remote.items):
        expected = item.expected_output if isinstance(item.expected_output, dict) else {}
        if item.expected_output is not None and not isinstance(item.expected_output, dict):
            expected = {"response_facts": [str(item.expected_output)]}
        metadata = item.metadata if isinstance(item.metadata, dict) else {}
        metadata = {
            "id": metadata.get("id") or item.id,
            "kind": metadata.get("kind", "happy_path"),
            **metadata,
        }
        try:
            items.append(
                GoldenItem.model_validate(
                    {"input": _as_question(item.input), "expected_output": expected, "metadata": metadata}
                )
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
            raise InputError("langfuse_bad_item", index=i, item=item.id, name=name, detail=detail) from exc
    return Dataset(name=name, items=items)


def langfuse_trace_id(trace_id: str) -> str:
    """MLflow's ``tr-<32 hex>`` for a trace exported over OTLP is Langfuse's ``<32 hex>``."""
    return trace_id.removeprefix("tr-")


def push_scores(settings: Any, scores: Iterable[LangfuseScore]) -> int:
    """Send scores to Langfuse, each linked to its trace; returns how many were sent. Failures are
    logged, never raised: an evaluation's own record (MLflow) is already written."""
    scores = [s for s in scores if s.trace_id]
    if not scores:
        return 0
    client = langfuse_client(settings, "sending scores to Langfuse")
    for s in scores:
        value: float | str = s.value
        data_type = "CATEGORICAL" if isinstance(value, str) else "NUMERIC"
        if isinstance(value, bool):
            value, data_type = float(value), "BOOLEAN"
        client.create_score(
            name=s.name,
            value=value,
            trace_id=langfuse_trace_id(s.trace_id),
            data_type=data_type,
            comment=s.comment,
        )
    try:
        client.flush()  # not shutdown: the SDK would keep the shut client for this key
    except Exception as exc:
        log.warning("scores not delivered to Langfuse at %s: %s", settings.langfuse_host, exc)
        return 0
    return len(scores)
