"""Version identity shared by every stage: the git commit that produced a model, run or trace."""

from __future__ import annotations

import subprocess
from functools import lru_cache

__all__ = ["git_commit"]


@lru_cache(maxsize=1)
def git_commit() -> str:
    """HEAD of the working tree this process runs from, or "unknown" outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=5
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
