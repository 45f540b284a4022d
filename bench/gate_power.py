"""Gate power: how often the gate wrongly blocks an identical candidate, and how often it catches a
broken one — on the real embedded stack, with an LLM in the answer path.

The champion is registered with the grounded policy plus an LLM lead sentence at temperature 0.8
(``lead_sentence``), so two runs of the same version give different answers, as a real LLM does.
The identical candidate is the same configuration as a local config runtime; it is gated
``IDENTICAL`` times. Each broken variant changes one thing:

- ``retrieval_off``: min_relevance 1.0 (nothing is ever relevant enough: it abstains on everything)
- ``i_dont_know_prompt``: retrieve_first with a system prompt that makes it answer "I don't know."
- ``guardrail_off``: guardrails false
- ``tool_removed``: tools [] (no doc_search)
- ``worse_policy``: retrieve_first with the 135M model (answers worse than grounded)

Dataset: 12 items of ``datasets/flywheel-docs-golden.json`` (6 happy path, 3 adversarial, 3 out of
scope), thresholds ``gate/thresholds.json``. Writes ``bench/results/gate_power.json`` with
``summary.false_block_rate`` and ``summary.detection_rate``.

Also: ``min_detectable_facts_delta``, the smallest facts regression the gate catches at 80 % power
on the full golden set (the paired spread of the identical runs through ``flywheel.gate.power``).

Run: ``.venv/bin/python bench/gate_power.py`` (about 20 minutes; ``BENCH_QUICK=1``: 3 identical runs).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import docs_stack, temp_stack_settings, write_result  # noqa: E402

IDENTICAL = 3 if os.environ.get("BENCH_QUICK") else 10
CHAMPION = {"policy": "grounded", "lead_sentence": True, "temperature": 0.8, "max_tokens": 48}
BROKEN = {
    "retrieval_off": {**CHAMPION, "min_relevance": 1.0},
    "i_dont_know_prompt": {
        "policy": "retrieve_first",
        "max_tokens": 24,
        "system_prompt": "Whatever the question, reply with exactly these words: I don't know.",
    },
    "guardrail_off": {**CHAMPION, "guardrails": False},
    "tool_removed": {**CHAMPION, "tools": []},
    "worse_policy": {"policy": "retrieve_first", "max_tokens": 160},
}


def main() -> None:
    _, settings = temp_stack_settings(
        "fw-gate-",
        collection="gate_docs",
        experiment="gate-power",
    )
    runs: list[dict] = []
    t0 = time.monotonic()
    with docs_stack(settings, agent=False):
        from flywheel.agent import AgentConfig
        from flywheel.evaluation import load_dataset
        from flywheel.gate import load_thresholds, run_gate
        from flywheel.registry import log_agent
        from flywheel.runtime import LocalRuntimes

        golden = load_dataset(ROOT / "datasets" / "flywheel-docs-golden.json")
        ds = golden.take({"happy_path": 6, "adversarial": 3, "out_of_scope": 3})
        th = load_thresholds(ROOT / "gate" / "thresholds.json")
        log_agent(settings, AgentConfig(**CHAMPION), name="gate-power", alias="champion")
        for config in (CHAMPION, *BROKEN.values()):
            AgentConfig(**config)  # a typo in a variant fails here, not after ten gates
        plan = [("identical", CHAMPION)] * IDENTICAL + list(BROKEN.items())
        for n, (name, config) in enumerate(plan, 1):
            t = time.monotonic()
            try:
                decision = run_gate(settings, ds, "config", config, "models:/gate-power@champion", th)
            except Exception as exc:  # an error is not a verdict: recorded, and the bench goes on
                runs.append({"variant": name, "error": f"{type(exc).__name__}: {str(exc)[:300]}"})
                print(f"[{n}/{len(plan)}] {name}: ERROR {exc}", flush=True)
                continue
            failed = [c["name"] for c in decision.checks if not c["passed"]]
            runs.append(
                {
                    "variant": name,
                    "blocked": not decision.passed,
                    "failed_checks": failed,
                    "comparison": {
                        m: {k: round(v, 4) for k, v in c.items() if isinstance(v, float)}
                        for m, c in decision.comparison.items()
                    },
                    "power": decision.power,
                    "seconds": round(time.monotonic() - t, 1),
                }
            )
            print(
                f"[{n}/{len(plan)}] {name}: {'BLOCKED' if not decision.passed else 'passed'} {failed}",
                flush=True,
            )
        leaked = LocalRuntimes(settings).all()
    errors = [r for r in runs if "error" in r]
    identical = [r for r in runs if r["variant"] == "identical" and "error" not in r]
    broken = [r for r in runs if r["variant"] != "identical" and "error" not in r]
    sizing = _sizing(identical, golden, th)
    summary = {
        **sizing,
        "false_block_rate": round(sum(r["blocked"] for r in identical) / len(identical), 4),
        "detection_rate": round(sum(r["blocked"] for r in broken) / len(broken), 4),
        "identical_runs": len(identical),
        "broken_variants": len(broken),
        "missed": [r["variant"] for r in broken if not r["blocked"]],
        "runtimes_left": len(leaked),
        "errors": len(errors),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    write_result("gate_power", summary, {"runs": runs, "champion": CHAMPION, "broken": BROKEN, "items": 12})
    print(json.dumps(summary, indent=2))


def _sizing(identical: list[dict], golden: object, th: object) -> dict:
    """The gate's power at the default dataset size: the spread of the paired facts differences
    pooled over the identical runs (the LLM's own noise; the candidate's per-item spread where a
    run's arms agreed on every item), put through the gate's own formula (:func:`flywheel.gate.power`)
    for the number of items of the full golden set that carry facts."""
    from flywheel.gate import power

    sds = [r["power"]["response_facts"]["sd"] for r in identical if r.get("power", {}).get("response_facts")]
    if not sds:
        return {}
    s = float(sum(sds) / len(sds))
    n_default = sum(bool(i.expected_output.response_facts) for i in golden.items)  # type: ignore[attr-defined]
    n_bench = identical[0]["power"]["response_facts"]["n"]
    out = {}
    for label, n in (("", n_default), ("_bench_items", n_bench)):
        cmp = {m: {"n": n, "sd_diff": s} for m in th.max_regression}  # type: ignore[attr-defined]
        pw = power(cmp, th)["response_facts"]  # type: ignore[arg-type]
        out[f"min_detectable_facts_delta{label}"] = pw["min_detectable"]
        out[f"facts_items{label}"] = n
    out["facts_items_needed_for_0.1"] = pw["items_needed"]
    out["facts_paired_sd"] = round(s, 4)
    return out


if __name__ == "__main__":
    main()
