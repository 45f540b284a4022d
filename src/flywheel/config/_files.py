"""Reading the JSON files users hand to a command (thresholds, tuning, …) with clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flywheel.errors import InputError

__all__ = ["read_json_file"]


def read_json_file(path: Path | str, what: dict[str, str], option: str) -> Any:
    """The parsed file; a missing file or invalid JSON is an InputError naming ``what`` (bilingual)
    and the ``option`` that named the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError("path_not_found", path=str(path), what=what, cwd=Path.cwd()) from exc
    except ValueError as exc:
        raise InputError(
            "option_value", option=option, value=str(path), expected=f"valid JSON ({exc})"
        ) from exc
