"""False refusals on a team's own documentation: questions mined from it, screened as users ask them.

``check_questions`` screens mined questions (``mine_questions``) under both input profiles and
reports the refusal rate with the rules that fired, so a team sees the guardrail refuse its users'
everyday vocabulary before its users do. ``flywheel ingest`` saves the report for the documents it
read (``data/guardrail-check.json``), ``flywheel doctor`` shows its headline and
``flywheel guardrail check [--corpus DIR]`` prints it whole.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flywheel.safety._guard import screen
from flywheel.safety._mining import MinedQuestion

__all__ = ["GuardrailCheck", "check_questions"]

REPORT_NAME = "guardrail-check.json"


@dataclass
class GuardrailCheck:
    questions: int = 0
    documents: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # profile → questions refused
    rules: dict[str, dict[str, int]] = field(default_factory=dict)  # profile → rule → count
    examples: list[dict[str, str]] = field(default_factory=list)  # refused under the full profile
    corpus: str = ""

    def rate(self, profile: str = "full") -> float:
        return self.refused.get(profile, 0) / self.questions if self.questions else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "rates": {p: round(self.rate(p), 4) for p in self.refused}}

    def save(self, folder: Path) -> Path:
        """Written atomically (a temporary file, then a rename)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / REPORT_NAME
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, folder: Path) -> GuardrailCheck | None:
        """The saved report, or None when there is none or it cannot be read (doctor never fails on it)."""
        path = folder / REPORT_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
            return cls(**known)
        except (OSError, ValueError, TypeError, AttributeError):
            return None


def check_questions(
    questions: Iterable[MinedQuestion], *, corpus: str = "", threshold: float | None = None
) -> GuardrailCheck:
    """Screen every mined question under the full and the extractive profile."""
    qs = list(questions)
    out = GuardrailCheck(questions=len(qs), documents=len({q.source for q in qs}), corpus=corpus)
    for profile in ("full", "extractive"):
        rules: Counter[str] = Counter()
        for q in qs:
            v = screen(q.text, threshold=threshold, profile=profile)
            if not v.allowed:
                rules[v.rule] += 1
                if profile == "full" and len(out.examples) < 50:
                    out.examples.append(
                        {"question": q.text, "source": q.source, "rule": v.rule, "layer": v.layer}
                    )
        out.refused[profile] = sum(rules.values())
        out.rules[profile] = dict(rules.most_common())
    return out
