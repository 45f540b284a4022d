"""Online A/B of agent versions, decided by evidence.

``flywheel serve --challenger models:/docs-qa-agent@challenger --share 0.1`` serves champion and
challenger side by side behind one port (:mod:`flywheel.serving._ab`): each user (else session,
else conversation) is sent to one arm for good by a hash, and the arm is on every trace
(``client.arm``). ``flywheel monitor run`` scores both arms' traces as it scores any trace.
``flywheel monitor ab`` then reads the arms' traces since the experiment started and decides:

1. **Guards first** — the challenger is rolled back at once when it is significantly worse than
   the champion on the error rate or the refusal rate (the same always-valid test on 0/1
   outcomes, beyond ``guard_margin``), or its latency p95 is over ``latency_ratio`` × the
   champion's (both arms with ``min_n`` traces).
2. **The primary metric**: each trace's quality, the mean of its online content scores (with a
   thumbs-down counting 0 and a thumbs-up 1). :func:`flywheel.monitoring._sequential.msprt` gives
   an always-valid interval for challenger − champion: above 0 → **promote** (``champion`` → the
   challenger's version, ``previous`` → the old one, all traffic to the challenger's arm); below
   0 → **roll back** (traffic back to the champion); else continue.

Every decision — with its evidence (arm counts, means, interval, p-value, guard figures) — is
appended to the experiment's state file ``data/ab/<name>.json`` (which the router re-reads, so the
traffic share follows the decision within seconds) and to ``data/ab/decisions.jsonl``; ``--dry-run``
reports without acting. With a real A/B on a shared tracking server, the same file would live on
a volume the router replicas share (docs/scale.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from flywheel.config import Settings
from flywheel.monitoring._sequential import ArmStats, msprt
from flywheel.serving import ABExperiment, ab_dir, load_experiment, save_experiment

__all__ = [
    "ABDecision",
    "ABExperiment",
    "apply_decision",
    "arm_observations",
    "decide",
    "load_experiment",
    "save_experiment",
]

CONTENT = ("groundedness", "answer_relevance", "response_quality", "judge_groundedness")
ARMS = ("champion", "challenger")


def _quality(trace: Any) -> float | None:
    """The trace's primary metric: its online content scores' mean, a person's thumbs counting."""
    scores: list[float] = []
    for a in sorted(trace.info.assessments or [], key=lambda a: getattr(a, "create_time_ms", 0) or 0):
        fb = getattr(a, "feedback", None)
        if fb is None:
            continue
        v = fb.value
        if a.name == "user_feedback" and isinstance(v, bool):
            scores.append(1.0 if v else 0.0)
        elif (
            a.name.startswith("online/")
            and a.name.removeprefix("online/") in CONTENT
            and isinstance(v, int | float)
            and not isinstance(v, bool)
        ):
            scores.append(float(v))
    return float(np.mean(scores)) if scores else None


def arm_observations(traces: list[Any], started_ms: int = 0) -> dict[str, dict[str, list[float]]]:
    """Per arm: ``quality`` (traces with a score), ``error``, ``refused`` and ``latency_ms``."""
    from flywheel.monitoring._online import trace_to_output

    out: dict[str, dict[str, list[float]]] = {
        arm: {"quality": [], "error": [], "refused": [], "latency_ms": []} for arm in ARMS
    }
    for t in sorted(traces, key=lambda t: t.info.request_time or 0):
        arm = (t.info.tags or {}).get("client.arm")
        if arm not in out or (t.info.request_time or 0) < started_ms:
            continue
        state = str(getattr(t.info.state, "value", t.info.state))
        o = out[arm]
        o["error"].append(1.0 if state == "ERROR" else 0.0)
        o["latency_ms"].append(float(t.info.execution_duration or 0))
        if state != "ERROR":
            _, eo = trace_to_output(t)
            o["refused"].append(1.0 if eo.refused else 0.0)
            if not eo.refused:
                q = _quality(t)
                if q is not None:
                    o["quality"].append(q)
    return out


@dataclass
class ABDecision:
    action: str  # promote | rollback | continue
    reason: str
    evidence: dict[str, Any]
    at: float = field(default_factory=time.time)


def decide(exp: ABExperiment, obs: dict[str, dict[str, list[float]]]) -> ABDecision:
    """Guards, then the primary metric's always-valid interval (module docstring)."""
    champ, chall = obs["champion"], obs["challenger"]
    evidence: dict[str, Any] = {
        "n": {arm: len(obs[arm]["error"]) for arm in ARMS},
        "scored": {arm: len(obs[arm]["quality"]) for arm in ARMS},
    }
    if exp.status != "running":
        return ABDecision("continue", f"the experiment is {exp.status}", evidence)
    for guard in ("error", "refused"):
        a, b = ArmStats.of(champ[guard]), ArmStats.of(chall[guard])
        r = msprt(a, b, exp.alpha, tau=0.05, min_n=exp.min_n)
        evidence[f"{guard}_rate"] = {
            "champion": a.mean,
            "challenger": b.mean,
            "ci": [r.ci_low, r.ci_high],
            "p": r.p_value,
        }
        if r.enough and r.ci_low > 0 and r.diff > exp.guard_margin:
            label = "error rate" if guard == "error" else "refusal rate"
            return ABDecision(
                "rollback",
                f"guard: the challenger's {label} {b.mean:.1%} vs {a.mean:.1%} (always-valid 95 % CI of "
                f"the difference {r.ci_low:+.3f} … {r.ci_high:+.3f})",
                evidence,
            )
    if min(len(champ["latency_ms"]), len(chall["latency_ms"])) >= exp.min_n:
        p95a, p95b = (float(np.percentile(x["latency_ms"], 95)) for x in (champ, chall))
        evidence["latency_p95_ms"] = {"champion": p95a, "challenger": p95b}
        if p95a > 0 and p95b > exp.latency_ratio * p95a:
            return ABDecision(
                "rollback",
                f"guard: the challenger's latency p95 {p95b:.0f} ms is over {exp.latency_ratio}× the "
                f"champion's {p95a:.0f} ms",
                evidence,
            )
    a, b = ArmStats.of(champ["quality"]), ArmStats.of(chall["quality"])
    r = msprt(a, b, exp.alpha, exp.tau, exp.min_n)
    evidence["quality"] = {
        "champion": a.mean,
        "challenger": b.mean,
        "diff": r.diff,
        "ci": [r.ci_low, r.ci_high],
        "p": r.p_value,
        "likelihood_ratio": r.likelihood_ratio,
    }
    span = f"{r.diff:+.3f} (always-valid 95 % CI {r.ci_low:+.3f} … {r.ci_high:+.3f})"
    if r.verdict == "better":
        return ABDecision("promote", f"the challenger is better: quality {span}", evidence)
    if r.verdict == "worse":
        return ABDecision("rollback", f"the challenger is worse: quality {span}", evidence)
    if not r.enough:
        return ABDecision(
            "continue", f"too few scored traces yet ({a.n} and {b.n}; {exp.min_n} per arm first)", evidence
        )
    return ABDecision("continue", f"no clear difference yet: quality {span}", evidence)


def apply_decision(
    settings: Settings, exp: ABExperiment, decision: ABDecision, dry_run: bool = False
) -> None:
    """Act on the decision (aliases, traffic share) and record it with its evidence."""
    record = {**asdict(decision), "dry_run": dry_run}
    if not dry_run and decision.action == "promote":
        from flywheel.registry import set_alias
        from flywheel.tracking import try_resolve_model

        champ = try_resolve_model(settings, exp.champion)
        chall = try_resolve_model(settings, exp.challenger)
        if chall is None:
            raise RuntimeError(f"{exp.challenger} does not resolve: nothing to promote")
        name, version = chall
        if champ:
            set_alias(settings, name, settings.alias("previous"), int(champ[1]))
        set_alias(settings, name, settings.alias("champion"), int(version))
        exp.status, exp.share = "promoted", 1.0  # every user to the arm that won
        record["aliases"] = {"champion": version, "previous": champ[1] if champ else None}
    elif not dry_run and decision.action == "rollback":
        exp.status, exp.share = "rolled_back", 0.0
    if decision.action != "continue" or not exp.decisions or exp.decisions[-1]["action"] != "continue":
        exp.decisions.append(record)  # one "continue" in a row is enough history
    else:
        exp.decisions[-1] = record
    if not dry_run:
        save_experiment(settings, exp)
        log = ab_dir(settings) / "decisions.jsonl"
        with log.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"experiment": exp.name, **record}, default=str) + "\n")
