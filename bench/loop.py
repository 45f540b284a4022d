"""The loop closed without a person in the middle: curation, online A/B decisions, calibration.

On the embedded stack (MLflow, Milvus Lite, the local LLM, the agent server with the grounded
policy, tracing on), nothing stubbed but the users:

1. **Curation.** Production traffic: ordinary questions (this guide's golden set, each by its own
   user) and **planted failures** — 12 distinct questions about features the docs do not have, each
   asked three ways by three users, one of them with an e-mail address and a phone number in it;
   the simulated users give every planted answer a thumbs-down (``POST /feedback``). The online
   monitor scores every trace, then :func:`flywheel.monitoring.curate` runs.
   ``curation_recall``: planted questions that became an item; ``curation_duplicates``: items
   beyond the first per planted question, over all items; ``curation_pii_leaks``: planted personal
   data found in the dataset file; ``curation_ordinary_items``: items from ordinary traffic (low
   online scores), reported.
2. **The A/B rule on simulated score streams** (as the issue allows): 20 experiments each with a
   worse, a better and an identical challenger; answers are good with probability p (the champion's
   p is the share of good answers measured in step 1, the challenger's ±0.15), users split 50/50,
   the rule checked after every 20 answers up to 3,000: ``ab_wrong_promotions`` (worse promoted),
   ``ab_power`` (better promoted), ``ab_false_decisions`` (identical decided either way).
3. **One A/B end to end**: champion (grounded) and a deliberately worse challenger (min_relevance
   1.0: it abstains on every question) registered, served by ``flywheel serve --challenger … --share
   0.5`` (two agent servers and the router, real processes), users who thumb down an abstention on a
   question the docs answer; the monitor scores both arms; ``flywheel monitor ab`` decides.
   ``ab_e2e_decision`` (rollback expected) and what the aliases and share are after it.
4. **Calibration** on the real answered traces of step 1 with simulated reviewers whose verdict
   follows a known rule — an answer is good when its relevance to the question (``answer_relevance``,
   the cosine of question and answer) reaches 0.6, 10 % of verdicts flipped — while the scorer's
   default pass mark is 0.5: :func:`flywheel.monitoring._calibrate.calibrate_scorer` fits the mark on
   one half, ``calibration_kappa_before`` / ``calibration_kappa_after`` are on the other. (A rule on
   ``groundedness`` gives no signal here: the grounded policy quotes its excerpts, so nearly every
   answer is fully grounded at any similarity — a first run measured kappa 0 → −0.1 on such labels.)

Writes bench/results/loop.json. Run: ``.venv/bin/python bench/loop.py`` (about 10 minutes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench._util import docs_stack, free_port, temp_stack_settings, write_result  # noqa: E402

PLANTED = [
    (
        "How do I connect flywheel to Slack?",
        "How can I hook flywheel up to Slack?",
        "Connecting flywheel with Slack: how?",
    ),
    (
        "Does flywheel have a Jira integration?",
        "Can flywheel create Jira tickets?",
        "Is there a Jira plugin for flywheel?",
    ),
    (
        "How do I log in with SAML single sign-on?",
        "Can I use SAML SSO to sign in?",
        "How do I set up SAML login?",
    ),
    (
        "Is there a Terraform provider for flywheel?",
        "Can I manage flywheel with Terraform?",
        "Where is the flywheel Terraform provider?",
    ),
    (
        "How do I run flywheel as a Windows service?",
        "Can flywheel run as a Windows service?",
        "Installing flywheel as a service on Windows?",
    ),
    (
        "Does flywheel offer a GraphQL API?",
        "Can I query flywheel over GraphQL?",
        "Where is the GraphQL endpoint of flywheel?",
    ),
    (
        "How do I export evaluation results to Excel?",
        "Can I download eval results as an Excel file?",
        "Export evaluation results to xlsx?",
    ),
    (
        "Is there a Microsoft Teams bot for the agent?",
        "Can I chat with the agent in Microsoft Teams?",
        "How do I add the agent to Teams?",
    ),
    (
        "Is there a mobile app for the chat page?",
        "Can I use the chat page from an iPhone app?",
        "Where do I get the mobile app?",
    ),
    (
        "Can flywheel trigger Zapier workflows?",
        "How do I connect flywheel to Zapier?",
        "Is there a Zapier integration?",
    ),
    (
        "Does the chat page accept voice input?",
        "Can I speak my questions to the agent?",
        "How do I turn on voice input in the chat?",
    ),
    (
        "How do I bill customers per question with Stripe?",
        "Can flywheel charge users through Stripe?",
        "Stripe billing for the agent: how?",
    ),
]
PII = ["ana.lopez@example.org", "+1 (415) 555-0199"]
LEFT: list[str] = []  # runtimes the A/B server left behind (must be none)
TRUE_MARK = 0.6  # the simulated reviewers' bar on answer_relevance (the scorer's default mark: 0.5)


def _ask(client: httpx.Client, url: str, question: str, user: str) -> dict[str, Any]:
    r = client.post(f"{url}/v1/responses", json={"input": question, "user": user}, timeout=120)
    r.raise_for_status()
    data = r.json()
    meta = data.get("metadata") or {}
    custom = data.get("custom_outputs") or {}
    text = "".join(
        c.get("text", "")
        for o in data.get("output", [])
        for c in (o.get("content") or [])
        if isinstance(c, dict)
    )
    return {
        "trace_id": meta.get("trace_id", ""),
        "abstained": bool(custom.get("abstained")),
        "refused": bool(custom.get("refused")),
        "text": text,
        "arm": r.headers.get("X-Flywheel-Arm"),
    }


def _feedback(client: httpx.Client, url: str, trace_id: str, value: bool, user: str) -> None:
    for _ in range(20):  # 202: the trace is on its way to the tracking server; it is stored later
        r = client.post(
            f"{url}/feedback", json={"trace_id": trace_id, "value": value, "user": user}, timeout=30
        )
        if r.status_code in (200, 202):
            return
        time.sleep(0.5)


def _score_all(settings: Any, context: Any, expected: int, filters: dict[str, str] | None = None) -> Any:
    from flywheel.monitoring import MonitorOptions, OnlineMonitor

    monitor = OnlineMonitor(settings, MonitorOptions(filters=filters or {}, settle_s=1.0), context)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        monitor.poll_once()
        if monitor.status()["seen"] >= expected:
            break
        time.sleep(1)
    return monitor


def curation(settings: Any, url: str, context: Any) -> tuple[dict[str, Any], list[Any]]:
    from flywheel.datagen import GenerateOptions, generate
    from flywheel.evaluation import load_dataset
    from flywheel.knowledge import KnowledgeBase
    from flywheel.monitoring import CurateOptions, curate
    from flywheel.tracking import client as tracking_client
    from flywheel.tracking import search_traces

    golden = load_dataset(ROOT / "datasets" / "flywheel-docs-golden.json")
    generated, _ = generate(
        settings,
        GenerateOptions(sources=[str(ROOT / "docs")], n=100, name="loop-generated", ingest=False),
        kb=KnowledgeBase(settings),
    )
    ordinary = [
        i.question for i in [*golden.items, *generated.items] if i.kind in ("happy_path", "edge_case")
    ]
    print(f"  {len(ordinary)} ordinary questions, {sum(len(f) for f in PLANTED)} planted", flush=True)
    planted_of: dict[str, int] = {}
    good_answers = 0
    answered = 0
    with httpx.Client() as client:
        for n, q in enumerate(ordinary):
            a = _ask(client, url, q, f"user-{n}")
            answered += not (a["abstained"] or a["refused"])
            good_answers += not (a["abstained"] or a["refused"]) and "[" in a["text"]
        for k, forms in enumerate(PLANTED):
            for j, q in enumerate(forms):
                if k == 0 and j == 2:
                    q = f"{q} Reply to {PII[0]} or call {PII[1]}."
                a = _ask(client, url, q, f"planted-{k}-{j}")
                planted_of[a["trace_id"]] = k
                _feedback(client, url, a["trace_id"], False, f"planted-{k}-{j}")
    total = len(ordinary) + sum(len(f) for f in PLANTED)
    from flywheel.tracking import use

    use(settings)
    exp = tracking_client(settings).get_experiment_by_name(settings.experiment)
    _score_all(settings, context, total)
    time.sleep(2)
    path = settings.data_path / "datasets" / "regressions.json"
    t0 = time.monotonic()
    report = curate(settings, exp.experiment_id, path, CurateOptions())
    seconds = time.monotonic() - t0
    items = report.items
    per_planted: dict[int, int] = {}
    ordinary_items = 0
    for item in items:
        ks = {planted_of[t] for t in (item.metadata.traces or []) if t in planted_of}  # type: ignore[attr-defined]
        if not ks:
            ordinary_items += 1
        for k in ks:
            per_planted[k] = per_planted.get(k, 0) + 1
    dupes = sum(c - 1 for c in per_planted.values())
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    traces = search_traces(settings, exp.experiment_id, "", 1000)
    return (
        {
            "curation_recall": round(len(per_planted) / len(PLANTED), 4),
            "curation_duplicates": round(dupes / max(1, len(items)), 4),
            "curation_pii_leaks": sum(p in text for p in PII),
            "curation_ordinary_items": ordinary_items,
            "curation_items": len(items),
            "curation_failures_found": report.failures,
            "curation_seconds": round(seconds, 2),
            "pii_scrubbed": report.pii_found,
            "champion_good_answer_share": round(good_answers / max(1, len(ordinary)), 4),
            "ordinary_questions": len(ordinary),
            "ordinary_answered": answered,
        },
        list(traces),
    )


def ab_simulated(p: float, runs: int = 20, seed: int = 11) -> dict[str, Any]:
    from flywheel.monitoring._ab import decide
    from flywheel.serving._ab import ABExperiment

    rng = np.random.default_rng(seed)

    def one(pa: float, pb: float) -> str:
        exp = ABExperiment("sim", "a", "b", 0.5)
        obs = {
            arm: {"quality": [], "error": [], "refused": [], "latency_ms": []}
            for arm in ("champion", "challenger")
        }
        for n in range(1, 3001):
            arm = "challenger" if rng.uniform() < 0.5 else "champion"
            o = obs[arm]
            o["quality"].append(float(rng.uniform() < (pb if arm == "challenger" else pa)))
            o["error"].append(0.0)
            o["refused"].append(0.0)
            o["latency_ms"].append(100.0)
            if n % 20 == 0:
                action = decide(exp, obs).action  # type: ignore[arg-type]
                if action != "continue":
                    return action
        return "continue"

    p = min(max(p, 0.2), 0.8)
    worse = [one(p, p - 0.15) for _ in range(runs)]
    better = [one(p, p + 0.15) for _ in range(runs)]
    same = [one(p, p) for _ in range(runs)]
    return {
        "ab_wrong_promotions": worse.count("promote"),
        "ab_power": round(better.count("promote") / runs, 4),
        "ab_false_decisions": round(sum(a != "continue" for a in same) / runs, 4),
        "ab_worse_rolled_back": round(worse.count("rollback") / runs, 4),
        "ab_experiments_per_case": runs,
        "ab_champion_p": round(p, 3),
    }


def ab_end_to_end(settings: Any, context: Any) -> dict[str, Any]:
    from flywheel.agent import AgentConfig
    from flywheel.evaluation import load_dataset
    from flywheel.monitoring._ab import apply_decision, arm_observations, decide
    from flywheel.registry import log_agent
    from flywheel.serving._ab import load_experiment
    from flywheel.tracking import client as tracking_client
    from flywheel.tracking import search_traces, try_resolve_model

    name = "docs-qa-agent"
    champ = log_agent(settings, AgentConfig(policy="grounded"), name=name, alias="champion")
    chall = log_agent(
        settings, AgentConfig(policy="grounded", min_relevance=1.0), name=name, alias="challenger"
    )
    port = free_port()
    env = {**os.environ, **settings.model_copy(update={"agent_port": port}).to_env()}
    log = open(settings.data_path / "ab-serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flywheel.cli.main",
            "serve",
            "--model",
            f"models:/{name}@champion",
            "--challenger",
            f"models:/{name}@challenger",
            "--share",
            "0.5",
            "--experiment",
            "e2e",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{settings.host}:{port}"
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ab", timeout=2).json().get("status") == "running":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            if proc.poll() is not None:
                raise RuntimeError((settings.data_path / "ab-serve.log").read_text()[-2000:])
            time.sleep(1)
        golden = load_dataset(ROOT / "datasets" / "flywheel-docs-golden.json")
        questions = [i.question for i in golden.items if i.kind == "happy_path"]
        arms: dict[str, int] = {}
        exp = load_experiment(settings, "e2e")
        assert exp is not None
        ex = tracking_client(settings).get_experiment_by_name(settings.experiment)
        decision = None
        with httpx.Client() as client:
            for rnd in range(6):  # rounds of traffic, each followed by scoring and a look
                for n in range(40):
                    user = f"ab-{rnd}-{n}"
                    a = _ask(client, url, questions[n % len(questions)], user)
                    arms[a["arm"]] = arms.get(a["arm"], 0) + 1
                    _feedback(client, url, a["trace_id"], not (a["abstained"] or a["refused"]), user)
                for _ in range(4):  # the round's traces settle and are scored
                    _score_all(settings, context, 0)
                    time.sleep(1.5)
                traces = search_traces(
                    settings, ex.experiment_id, f"trace.timestamp_ms >= {exp.started_ms}", 5000
                )
                decision = decide(exp, arm_observations(list(traces), exp.started_ms))
                apply_decision(settings, exp, decision)
                if decision.action != "continue":
                    break
        after = load_experiment(settings, "e2e")
        return {
            "ab_e2e_decision": decision.action if decision else None,
            "ab_e2e_reason": decision.reason if decision else None,
            "ab_e2e_requests": arms,
            "ab_e2e_share_after": after.share if after else None,
            "ab_e2e_champion_after": try_resolve_model(settings, f"models:/{name}@champion"),
            "ab_e2e_versions": {"champion": champ.version, "challenger": chall.version},
        }
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        from flywheel.runtime import LocalRuntimes

        LEFT.extend(rt.name for rt in LocalRuntimes(settings).all())  # what SIGTERM left running


def calibration(traces: list[Any], context: Any) -> dict[str, Any]:
    from flywheel.evaluation._dataset import GoldenItem
    from flywheel.evaluation._scorers import make_scorer
    from flywheel.monitoring._calibrate import LabelledTrace, calibrate_scorer
    from flywheel.monitoring._online import trace_to_output

    rng = np.random.default_rng(5)
    true = make_scorer("answer_relevance")
    labelled = []
    for t in traces:
        question, out = trace_to_output(t)
        if out.refused or out.abstained or not out.answer.strip():
            continue
        v = true(GoldenItem.model_validate({"input": {"question": question or "?"}}), out, context).value
        if v is None:
            continue
        label = (v >= TRUE_MARK) != (rng.uniform() < 0.1)
        labelled.append(LabelledTrace(t.info.trace_id, bool(label), question, out))
    cal = calibrate_scorer("answer_relevance", labelled, context)
    return {
        "calibration_kappa_before": cal.before.get("kappa"),
        "calibration_kappa_after": cal.after.get("kappa"),
        "calibration_kappa_before_ci": cal.before.get("kappa_ci"),
        "calibration_kappa_after_ci": cal.after.get("kappa_ci"),
        "calibration_fitted": {**cal.params, "pass_at": cal.pass_at},
        "calibration_scorer": "answer_relevance",
        "calibration_true_pass_mark": TRUE_MARK,
        "calibration_label_pass_rate": round(sum(t.label for t in labelled) / max(1, len(labelled)), 3),
        "calibration_labels": {"train": cal.n_train, "test": cal.n_test},
    }


def main() -> None:
    from flywheel.evaluation import scorer_context

    _, settings = temp_stack_settings("fw-loop-", collection="loop_docs", experiment="loop")
    t0 = time.monotonic()
    summary: dict[str, Any] = {}
    with docs_stack(settings) as url:
        context = scorer_context(settings)
        print("1. curation", flush=True)
        cur, traces = curation(settings, url, context)
        summary.update(cur)
        print(json.dumps(cur, indent=1), flush=True)
        print("2. the A/B rule on simulated streams", flush=True)
        summary.update(ab_simulated(cur["champion_good_answer_share"]))
        print("3. calibration", flush=True)
        summary.update(calibration(traces, context))
        print("4. an A/B end to end", flush=True)
        try:
            summary.update(ab_end_to_end(settings, context))
        except Exception as exc:  # recorded, not hidden
            summary["ab_e2e_error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
    summary["ab_e2e_runtimes_left"] = len(LEFT)
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    write_result("loop", summary, {"planted": PLANTED, "pii": "planted e-mail and phone (not in the file)"})
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
