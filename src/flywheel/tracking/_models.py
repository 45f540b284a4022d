"""Registered models: resolve a ``models:/`` URI to name, version and alias; load a version."""

from __future__ import annotations

import os
from typing import Any

from flywheel.config import Settings
from flywheel.errors import InputError
from flywheel.tracking._session import client, use

__all__ = ["load_pyfunc", "resolve_model", "try_resolve_model"]


def resolve_model(settings: Settings, uri: str) -> dict[str, str]:
    """models:/NAME@ALIAS or models:/NAME/VERSION → registered model name, version, alias, URI.
    Raises InputError for a URI of another shape; MLflow's error when the alias does not exist."""
    body = uri.removeprefix("models:/")
    if not uri.startswith("models:/") or not body:
        raise InputError("model_uri_invalid", uri=uri)
    if "@" in body:
        name, alias = body.split("@", 1)
        version = str(client(settings).get_model_version_by_alias(name, alias).version)
    elif "/" in body:
        name, version = body.rsplit("/", 1)
        alias = ""
    else:
        raise InputError("model_uri_invalid", uri=uri)
    return {
        "registered_model.name": name,
        "registered_model.version": version,
        "registered_model.alias": alias,
        "model_uri": uri,
    }


def try_resolve_model(settings: Settings, uri: str) -> tuple[str, str] | None:
    """(name, version) of a models:/ URI, or None when its alias does not exist (yet)."""
    try:
        ident = resolve_model(settings, uri)
    except InputError:
        raise
    except Exception:  # no such alias or model
        return None
    return ident["registered_model.name"], ident["registered_model.version"]


def load_pyfunc(settings: Settings, uri: str) -> Any:
    """Load a registered version as an MLflow pyfunc model (from the settings' tracking server).

    Without MLflow's artifact-download progress bar (it only reads an environment variable,
    MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR): it was noise in the middle of the gate's output."""
    import mlflow

    use(settings)
    before = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    try:
        return mlflow.pyfunc.load_model(uri)
    finally:
        if before is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = before
