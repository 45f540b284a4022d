"""`flywheel monitor`: online evaluation of production traces (sampled, resumable, never silent)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flywheel.cli._common import console, quiet_mlflow, settings

if TYPE_CHECKING:
    from flywheel.config import Settings

app = typer.Typer(no_args_is_help=True, help="Online evaluation of production traces.")


def _monitor(
    experiment: str | None,
    sample_rate: float = 1.0,
    filters: list[str] | None = None,
    exclude_simulated: bool = False,
    replica: str | None = None,
):  # type: ignore[no-untyped-def]
    from flywheel.errors import InputError
    from flywheel.evaluation import ScorerContext
    from flywheel.knowledge import scoring_embedder
    from flywheel.llm import make_judge
    from flywheel.monitoring import MonitorOptions, OnlineMonitor
    from flywheel.stack import require

    if not 0 < sample_rate <= 1:
        raise InputError(
            "option_value", option="--sample-rate", value=sample_rate, expected="a number in (0, 1]"
        )
    pairs = {}
    for f in filters or []:
        key, sep, value = f.partition("=")
        if not sep:
            raise InputError("option_syntax", option="--filter", value=f)
        pairs[key.strip()] = value.strip()
    cfg = settings()
    require(cfg, "tracking")
    quiet_mlflow()
    index, count = _replica(replica or cfg.monitor_replica, cfg.monitor_replicas)
    opts = MonitorOptions(
        sample_rate=sample_rate,
        filters=pairs,
        exclude_simulated=exclude_simulated,
        replica=index,
        replicas=count,
    )
    ctx = ScorerContext(embed=scoring_embedder(cfg).embed_documents, judge=make_judge(cfg))
    return OnlineMonitor(cfg, opts, ctx, experiment)


def _replica(value: str | None, replicas: int | None = None) -> tuple[int, int]:
    """``I/N`` from --replica (or FLYWHEEL_MONITOR_REPLICA), else a StatefulSet pod's ordinal (the
    hostname's ``-I`` suffix) with FLYWHEEL_MONITOR_REPLICAS=N; (0, 1) when none is set."""
    import os
    import re

    from flywheel.errors import InputError

    if not value and replicas:
        ordinal = re.search(r"-(\d+)$", os.environ.get("HOSTNAME", ""))
        value = f"{ordinal.group(1) if ordinal else 0}/{replicas}"
    if not value:
        return 0, 1
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", value)
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise InputError(
            "option_value", option="--replica", value=value, expected="I/N with 0 <= I < N, e.g. 0/3"
        )
    return int(m.group(1)), int(m.group(2))


REPLICA_HELP = (
    "I/N: score only the traces whose id hashes to I of N (run N replicas, I = 0…N-1; "
    "default FLYWHEEL_MONITOR_REPLICA, or the StatefulSet ordinal with FLYWHEEL_MONITOR_REPLICAS)."
)


@app.command("run")
def run(
    sample_rate: Annotated[
        float, typer.Option(help="Share of new traces to score (0-1], by trace-id hash.")
    ] = 1.0,
    filter_: Annotated[
        list[str] | None,
        typer.Option("--filter", help="TAG=VALUE a trace must carry (repeatable), e.g. client.arm=b."),
    ] = None,
    exclude_simulated: Annotated[bool, typer.Option(help="Skip traces of `flywheel simulate`.")] = False,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment to follow (default: FLYWHEEL_EXPERIMENT).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: until Ctrl+C).")
    ] = None,
    max_traces: Annotated[int | None, typer.Option(help="Stop after scoring this many traces.")] = None,
    once: Annotated[bool, typer.Option("--once", help="Score what has arrived, then stop.")] = False,
    poll: Annotated[float, typer.Option(help="Seconds between polls.")] = 2.0,
    replica: Annotated[str | None, typer.Option(help=REPLICA_HELP)] = None,
) -> None:
    """Follow new traces, sample them, score them with reference-free scorers (safety, groundedness,
    answer relevance, latency, response quality) and record `online/<scorer>` assessments on them.
    Resumes where it stopped (a cursor in data/monitor/).

    Examples:
      flywheel monitor run --once
      flywheel monitor run --sample-rate 0.2 --filter client.arm=b --duration 600
      flywheel monitor run --replica 1/3     # one of three replicas; none scores a trace twice
      flywheel monitor status
    """
    mon = _monitor(experiment, sample_rate, filter_, exclude_simulated, replica)
    until = time.monotonic() + duration if duration else None
    if once:
        n = mon.poll_once()
        console.print(f"scored {n} trace(s)")
    else:
        console.print(f"following experiment {mon.experiment_id} (Ctrl+C to stop) …")

        def report(n: int) -> None:
            if n:
                console.print(f"scored {n} trace(s)")

        try:
            mon.run(
                poll_s=poll,
                until=until,
                max_traces=max_traces,
                on_poll=report,
            )
        except KeyboardInterrupt:
            console.print("stopped; the cursor is saved, `flywheel monitor run` resumes")
    _print_status(mon.status())


@app.command("status")
def status(
    experiment: Annotated[str | None, typer.Option(help="Experiment (default: FLYWHEEL_EXPERIMENT).")] = None,
    sample_rate: Annotated[float, typer.Option(help="The --sample-rate of the run to show.")] = 1.0,
    filter_: Annotated[
        list[str] | None, typer.Option("--filter", help="The --filter of the run to show.")
    ] = None,
    exclude_simulated: Annotated[bool, typer.Option(help="The run with --exclude-simulated.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Counters of the online evaluation: traces seen, scored, sampled out; failures per scorer; lag
    from trace to assessment; mean online scores. Each combination of --sample-rate / --filter /
    --exclude-simulated has its own cursor and counters: pass the same options as the run. With
    several replicas (`monitor run --replica I/N`, on any machines) their counters are added up
    from what each publishes to the experiment, one row per replica.

    Example:
      flywheel monitor status --json
    """
    mon = _monitor(experiment, sample_rate, filter_, exclude_simulated)
    s = mon.status()
    replicas = mon.replica_statuses()
    if len(replicas) > 1:
        s = {**s, **_aggregate(replicas), "replicas": replicas}
    if json_out:
        console.print_json(json.dumps(s))
    else:
        _print_status(s)
        if len(replicas) > 1:
            _print_replicas(replicas)


def _aggregate(replicas: list[dict[str, Any]]) -> dict[str, Any]:
    """The replicas' counters added up; means weighted by how many traces each scored; the lag
    figures are the worst replica's."""
    total: dict[str, Any] = {
        k: sum(r.get(k, 0) for r in replicas)
        for k in ("seen", "scored", "given_up", "sampled_out", "filtered_out")
    }
    means: dict[str, list[float]] = {}
    for r in replicas:
        for name, (n, mean) in r.get("means", {}).items():
            acc = means.setdefault(name, [0, 0.0])
            acc[0] += n
            acc[1] += n * mean
    total["means"] = {k: round(v[1] / v[0], 4) for k, v in means.items() if v[0]}
    for key in ("lag_p50_s", "lag_p95_s"):
        values = [r[key] for r in replicas if r.get(key) is not None]
        total[key] = max(values) if values else None
    total["cursor"] = min(r.get("cursor", 0) for r in replicas)  # everything before it is scored
    return total


def _print_replicas(replicas: list[dict[str, Any]]) -> None:
    from rich.table import Table

    t = Table(title=f"{len(replicas)} replicas", title_justify="left")
    for col in ("replica", "seen", "scored", "failures", "lag p95", "last poll"):
        t.add_column(col)
    now = time.time()
    for r in replicas:
        lag = "–" if r.get("lag_p95_s") is None else f"{r['lag_p95_s']:.1f} s"
        t.add_row(
            f"{r['replica']}/{r['replicas']}",
            str(r.get("seen", 0)),
            str(r.get("scored", 0)),
            str(r.get("failures", 0)),
            lag,
            f"{now - r.get('updated', now):.0f} s ago",
        )
    console.print(t)


def _experiment_id(cfg: Settings, experiment: str | None) -> str:
    """The id of ``experiment`` (default: FLYWHEEL_EXPERIMENT); a clear error when it does not exist."""
    from flywheel import tracking
    from flywheel.errors import InputError

    name = experiment or cfg.experiment
    exp = tracking.client(cfg).get_experiment_by_name(name)
    if exp is None:
        raise InputError("monitor_no_experiment", name=name)
    return str(exp.experiment_id)


def _experiment_traces(
    experiment: str | None, limit: int, include_spans: bool = False, cfg: Settings | None = None
) -> list[Any]:
    """The newest ``limit`` traces of ``experiment`` (default: FLYWHEEL_EXPERIMENT) on the tracking
    server, which must be reachable; a clear error when the experiment does not exist. A command
    that has set up already (``cfg``, the server checked) passes its settings."""
    from flywheel import tracking
    from flywheel.stack import require

    if cfg is None:
        cfg = settings()
        require(cfg, "tracking")
        quiet_mlflow()
    return tracking.search_traces(
        cfg,
        _experiment_id(cfg, experiment),
        limit=limit,
        order_by=["timestamp_ms DESC"],
        include_spans=include_spans,
    )


def _print_status(s: dict) -> None:
    from rich.table import Table

    t = Table(title=f"online evaluation · experiment {s['experiment_id']}", show_header=False)
    t.add_row("traces seen / scored", f"{s['seen']} / {s['scored']}")
    t.add_row("sampled out / filtered out", f"{s['sampled_out']} / {s['filtered_out']}")
    lag = "–" if s["lag_p50_s"] is None else f"{s['lag_p50_s']:.1f} s / {s['lag_p95_s']:.1f} s"
    t.add_row("lag trace → assessment p50 / p95", lag)
    fails = ", ".join(f"{k}: {v}" for k, v in s["failures"].items())
    t.add_row("failures", f"[red]{fails}[/]" if fails else "none")
    if s.get("given_up"):
        t.add_row("given up (failed 3 polls)", f"[red]{s['given_up']}[/]")
    for name, mean in sorted(s["means"].items()):
        t.add_row(f"mean online/{name}", f"{mean:.3f}")
    console.print(t)


@app.command("agreement")
def agreement_cmd(
    experiment: Annotated[str | None, typer.Option(help="Experiment (default: FLYWHEEL_EXPERIMENT).")] = None,
    human: Annotated[
        str | None, typer.Option(help="Only this HUMAN assessment (default: any, e.g. user_feedback).")
    ] = None,
    threshold: Annotated[float, typer.Option(help="A score at or above this passes.")] = 0.5,
    limit: Annotated[int, typer.Option(help="Most recent traces to read.")] = 5000,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Judge–human agreement: on traces a person (thumbs on the chat page, a reviewer) and an
    automated scorer (online/*) both judged, the share of equal pass/fail decisions and Cohen's kappa
    per scorer. Kappa near 0: the scorer agrees no more than chance — do not let it gate anything.

    Example:
      flywheel monitor agreement --human user_feedback
    """

    from flywheel.monitoring import agreement, pairs_from_traces

    traces = _experiment_traces(experiment, limit)
    rows = agreement(pairs_from_traces(traces, human), threshold)
    if json_out:
        console.print_json(json.dumps([r.__dict__ for r in rows]))
        return
    from rich.table import Table

    table = Table(title=f"judge–human agreement · {len(traces)} traces read")
    for col in ("scorer", "traces judged by both", "agreement", "Cohen's kappa", "human pass", "scorer pass"):
        table.add_column(col)
    for r in rows:
        kappa = "–" if r.kappa is None else f"{r.kappa:.2f}"
        table.add_row(
            r.scorer,
            str(r.n),
            f"{r.agreement:.0%}",
            kappa,
            f"{r.human_pass_rate:.0%}",
            f"{r.scorer_pass_rate:.0%}",
        )
    console.print(table if rows else "no trace carries both a human and an automated assessment yet")


@app.command("calibrate")
def calibrate_cmd(
    scorers: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated online scorers to fit (default: groundedness, answer_relevance, "
            "response_quality, and judge_groundedness when a judge is configured)."
        ),
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment (default: FLYWHEEL_EXPERIMENT).")] = None,
    limit: Annotated[int, typer.Option(help="Most recent traces to read.")] = 5000,
    min_labels: Annotated[int, typer.Option(min=4, help="Fewest labelled traces to fit on.")] = 20,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report; write no new scorer version.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Fit the online scorers to the people who review: on half of the labelled traces
    (review/correct, else thumbs), the scorer's own threshold and its pass mark by Cohen's kappa —
    for the LLM judge (judge_groundedness) also 2, 4 or 6 of those traces as few-shot examples in
    its prompt; on the other half, agreement and kappa with 95 % intervals before and after. Writes a new
    scorer version (data/monitor/scorers.json) that `monitor run`, `monitor curate` and the
    review queue then use; its spec differs, so no old score is reused.

    Examples:
      flywheel monitor calibrate --dry-run
      flywheel monitor calibrate --scorers groundedness
      FLYWHEEL_JUDGE_BASE_URL=http://127.0.0.1:8080/v1 flywheel monitor calibrate --scorers judge_groundedness
    """
    from rich.table import Table

    from flywheel.errors import InputError
    from flywheel.evaluation import ONLINE_SCORERS, scorer_context
    from flywheel.monitoring._calibrate import calibrate_scorer, labelled_traces, save_calibration

    cfg = settings()
    judge = bool(cfg.judge_base_url)
    if scorers is None:
        scorers = "groundedness,answer_relevance,response_quality" + (",judge_groundedness" if judge else "")
    names = [s.strip() for s in scorers.split(",") if s.strip()]
    unknown = [
        n
        for n in names
        if n not in ONLINE_SCORERS or n == "latency" or (n == "judge_groundedness" and not judge)
    ]
    if unknown:
        raise InputError(
            "option_value",
            option="--scorers",
            value=", ".join(unknown),
            expected="groundedness, answer_relevance, response_quality, safety"
            + (", judge_groundedness" if judge else " (judge_groundedness needs FLYWHEEL_JUDGE_BASE_URL)"),
        )
    with console.status("Reading labelled traces…"):
        labelled = labelled_traces(_experiment_traces(experiment, limit))
    if len(labelled) < min_labels:
        console.print(
            f"only {len(labelled)} labelled trace(s) (need {min_labels}): label more in `flywheel monitor review`"
        )
        raise typer.Exit(1)
    context = scorer_context(cfg)
    results = []
    with console.status("Fitting…") as status:
        for name in names:
            status.update(f"fitting {name} on {len(labelled)} labelled traces")
            results.append(calibrate_scorer(name, labelled, context))
    if json_out:
        console.print_json(json.dumps([r.to_json() for r in results]))
    else:
        table = Table(title=f"calibration on {len(labelled)} labelled traces (fit on train, shown on test)")
        for col in (
            "scorer",
            "version",
            "pass at",
            "agreement before → after",
            "kappa before → after (95 % CI)",
        ):
            table.add_column(col)

        def k(f: dict) -> str:
            if f.get("kappa") is None:
                return "–"
            ci = f.get("kappa_ci") or [None, None]
            return f"{f['kappa']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci[0] is not None else "")

        for r in results:
            a0, a1 = r.before.get("agreement"), r.after.get("agreement")
            table.add_row(
                r.scorer,
                r.spec,
                f"{r.pass_at:.2f}",
                f"{a0 if a0 is None else f'{a0:.0%}'} → {a1 if a1 is None else f'{a1:.0%}'}",
                f"{k(r.before)} → {k(r.after)}",
            )
        console.print(table)
    if dry_run:
        console.print("dry run: no new scorer version written")
    else:
        console.print(f"new scorer versions → {save_calibration(cfg, results)}")


@app.command("ab")
def ab_cmd(
    name: Annotated[
        str, typer.Option("--name", help="The A/B experiment (as started by serve --challenger).")
    ] = "default",
    experiment: Annotated[
        str | None, typer.Option(help="MLflow experiment of the traces (default: FLYWHEEL_EXPERIMENT).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report the decision; do not act on it.")
    ] = False,
    watch: Annotated[
        float | None,
        typer.Option(help="Decide again every this many seconds until a decision (the test stays valid)."),
    ] = None,
    max_minutes: Annotated[float, typer.Option(help="With --watch: stop after this long.")] = 60.0,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Decide an online A/B by evidence: guards (error rate, refusal rate, latency p95) first, then
    an always-valid sequential test (mSPRT) on the arms' online quality. A clear win promotes the
    challenger (aliases moved, all traffic to it), a clear loss or a guard breach sends traffic back
    to the champion; each decision is recorded with its evidence (data/ab/). Run `flywheel monitor
    run` beside it so that both arms' traces are scored.

    Examples:
      flywheel monitor ab --dry-run
      flywheel monitor ab --watch 60 --max-minutes 120
    """
    from rich.table import Table

    from flywheel import tracking
    from flywheel.errors import InputError
    from flywheel.monitoring._ab import apply_decision, arm_observations, decide
    from flywheel.serving._ab import load_experiment
    from flywheel.stack import require

    cfg = settings()
    require(cfg, "tracking")
    quiet_mlflow()
    exp = load_experiment(cfg, name)
    if exp is None:
        raise InputError(
            "option_value",
            option="--name",
            value=name,
            expected="an A/B experiment started by `flywheel serve --challenger …`",
        )
    deadline = time.monotonic() + max_minutes * 60
    while True:
        tracking.use(cfg)
        c = tracking.client(cfg)
        mexp = c.get_experiment_by_name(experiment or cfg.experiment)
        if mexp is None:
            raise InputError("monitor_no_experiment", name=experiment or cfg.experiment)
        traces = tracking.search_traces(
            cfg, mexp.experiment_id, f"trace.timestamp_ms >= {exp.started_ms}", 20000
        )
        decision = decide(exp, arm_observations(list(traces), exp.started_ms))
        apply_decision(cfg, exp, decision, dry_run=dry_run)
        if decision.action != "continue" or watch is None or time.monotonic() > deadline:
            break
        time.sleep(watch)
    if json_out:
        console.print_json(
            json.dumps(
                {"action": decision.action, "reason": decision.reason, "evidence": decision.evidence},
                default=str,
            )
        )
        return
    ev = decision.evidence
    table = Table(
        title=f"A/B {exp.name}: {exp.champion} vs {exp.challenger} ({exp.share:.0%} → challenger)", box=None
    )
    for col in ("", "champion", "challenger"):
        table.add_column(col)
    table.add_row("traces", *(str(ev["n"][a]) for a in ("champion", "challenger")))
    table.add_row("scored", *(str(ev["scored"][a]) for a in ("champion", "challenger")))
    q = ev.get("quality")
    if q:
        table.add_row(
            "quality", *(f"{q[a]:.3f}" if q[a] == q[a] else "–" for a in ("champion", "challenger"))
        )
    for g in ("error_rate", "refused_rate"):
        if g in ev:
            table.add_row(
                g.replace("_", " "),
                *(f"{ev[g][a]:.1%}" if ev[g][a] == ev[g][a] else "–" for a in ("champion", "challenger")),
            )
    if "latency_p95_ms" in ev:
        table.add_row(
            "latency p95", *(f"{ev['latency_p95_ms'][a]:.0f} ms" for a in ("champion", "challenger"))
        )
    console.print(table)
    verb = {"promote": "[green]PROMOTE[/]", "rollback": "[red]ROLL BACK[/]", "continue": "continue"}[
        decision.action
    ]
    console.print(
        f"{verb}: {decision.reason}"
        + (" (dry run: nothing changed)" if dry_run and decision.action != "continue" else "")
    )


@app.command("review")
def review(
    port: Annotated[int, typer.Option(help="Port of the review page.")] = 5020,
    dataset: Annotated[
        Path, typer.Option(help="Dataset that 'Add to dataset' appends to (created when missing).")
    ] = Path("datasets/production.json"),
    labels: Annotated[
        Path | None,
        typer.Option(help="JSON list of label definitions: {name, type: boolean|numeric|categorical, ...}."),
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment (default: FLYWHEEL_EXPERIMENT).")] = None,
) -> None:
    """The annotation queue: a web page to review production traces (queues: thumbs-down, low-score,
    flagged, random), label them, correct the answer and add them to a golden dataset. Labels are
    HUMAN assessments review/<label> on the trace. Keys: j/k, y/n, 1-5, s (save), a (add to dataset).

    Example:
      flywheel monitor review --dataset datasets/production.json   # then open http://127.0.0.1:5020/
    """
    import uvicorn

    from flywheel.errors import InputError
    from flywheel.monitoring._review import build_review_app
    from flywheel.stack import require

    cfg = settings()
    require(cfg, "tracking")
    quiet_mlflow()
    defs = None
    if labels is not None:
        try:
            defs = json.loads(labels.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                "set_value", key="--labels", value=str(labels), expected="a JSON list of labels"
            ) from exc
    app_ = build_review_app(cfg, dataset, defs, experiment)
    console.print(f"review page on http://{cfg.host}:{port}/ — Ctrl+C to stop")
    uvicorn.run(app_, host=cfg.host, port=port, log_level="warning")


@app.command("to-dataset")
def to_dataset(
    trace_ids: Annotated[list[str] | None, typer.Argument(help="Trace ids (tr-…) to add.")] = None,
    queue: Annotated[
        str | None, typer.Option(help="Add every reviewed trace of this queue (e.g. thumbs-down).")
    ] = None,
    dataset: Annotated[Path, typer.Option(help="Dataset file to append to.")] = Path(
        "datasets/production.json"
    ),
    kind: Annotated[str | None, typer.Option(help="Item kind (default: from the trace's outcome).")] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment (default: FLYWHEEL_EXPERIMENT).")] = None,
) -> None:
    """Turn production traces into golden items (question; expected facts from the reviewer's
    corrected answer, else the answer; tools used; source trace id), de-duplicated, saved as a new
    dataset version (NAME@DIGEST in MLflow).

    Examples:
      flywheel monitor to-dataset tr-0123… tr-4567… --dataset datasets/production.json
      flywheel monitor to-dataset --queue thumbs-down
    """

    from flywheel import tracking
    from flywheel.errors import InputError
    from flywheel.monitoring._calibrate import pass_marks
    from flywheel.monitoring._feedback import add_to_dataset, item_from_trace
    from flywheel.monitoring._review import QUEUES, _in_queue
    from flywheel.stack import require

    cfg = settings()
    require(cfg, "tracking")
    quiet_mlflow()
    tracking.use(cfg)
    traces = []
    for tid in trace_ids or []:
        trace = tracking.get_trace(cfg, tid)
        if trace is None:
            raise InputError("unknown_trace", trace_id=tid)
        traces.append(trace)
    if queue:
        if queue not in QUEUES:
            raise InputError("option_value", option="--queue", value=queue, expected=" | ".join(QUEUES))
        marks = pass_marks(cfg)
        for t in _experiment_traces(experiment, 2000, include_spans=True, cfg=cfg):
            if _in_queue(queue, t, marks) and any(
                k.startswith("review/") for k in tracking.assessment_values(t)[0]
            ):
                traces.append(t)
    if not traces:
        console.print("nothing to add (name trace ids, or a queue with reviewed items)")
        return
    result = add_to_dataset(cfg, dataset, [item_from_trace(t, kind=kind) for t in traces])
    console.print(
        f"added {len(result.added)} item(s), {len(result.duplicates)} already there → {result.path} "
        f"({result.items} items) · dataset version {result.version}"
    )


@app.command("curate")
def curate_cmd(
    out: Annotated[
        Path | None,
        typer.Option(help="The regressions dataset (default: DATA_DIR/datasets/regressions.json)."),
    ] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment (default: FLYWHEEL_EXPERIMENT).")] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="An online score below this marks a failure (default: each scorer's calibrated "
            "pass mark from `monitor calibrate`, else 0.5).",
        ),
    ] = None,
    distance: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            max=1.0,
            help="1 - similarity under which two questions are one regression (default 0.5; the "
            "similarity mixes two embedders' cosine with the questions' shared rare terms).",
        ),
    ] = None,
    since: Annotated[
        float | None,
        typer.Option(help="Hours to look back (default: since the last curate, from its cursor)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=50000, help="Most traces to read.")] = 5000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be added; write nothing.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Regressions from production, without a person in the middle: traces with a low online score,
    a thumbs-down or a human correction, personal data scrubbed, rephrasings grouped and what the
    dataset has skipped, written as a new version of the regressions dataset — which the gate
    checks the candidate on (`flywheel gate --regressions …`).

    Examples:
      flywheel monitor curate --dry-run
      flywheel monitor curate                      # since the last run (a cron job or CronJob)
      flywheel monitor curate --since 168 --out datasets/regressions.json
    """
    from rich.table import Table

    from flywheel import tracking
    from flywheel.monitoring import CurateOptions, curate
    from flywheel.monitoring._calibrate import pass_marks
    from flywheel.monitoring._curate import CONTENT_SCORERS
    from flywheel.stack import require

    cfg = settings()
    require(cfg, "tracking")
    quiet_mlflow()
    tracking.use(cfg)
    experiment_id = _experiment_id(cfg, experiment)
    path = out or cfg.data_path / "datasets" / "regressions.json"
    marks = pass_marks(cfg)
    opts = CurateOptions(
        thresholds={
            k: threshold if threshold is not None else marks.get(k, v) for k, v in CONTENT_SCORERS.items()
        },
        limit=limit,
        since_ms=int((time.time() - since * 3600) * 1000) if since is not None else None,
        dry_run=dry_run,
    )
    if distance is not None:
        opts.distance = distance
    with console.status("Curating failing traces…") as status:
        report = curate(cfg, experiment_id, path, opts, on_event=lambda m: status.update(m))
    if json_out:
        console.print_json(json.dumps(report.to_json()))
        return
    table = Table(
        title=f"{len(report.items)} new regression(s) from {report.failures} failing trace(s)", box=None
    )
    for col in ("item", "question", "why", "traces"):
        table.add_column(col)
    for item in report.items:
        m = item.metadata
        why = ", ".join(
            [f"{k} {v:.2f}" for k, v in (getattr(m, "failing", None) or {}).items()]
            + (["thumbs-down"] if getattr(m, "thumbs_down", False) else [])
            + (["corrected"] if getattr(m, "corrected", False) else [])
        )
        table.add_row(m.id or "", item.question[:60], why, str(len(getattr(m, "traces", None) or [])))
    console.print(table)
    pii = ", ".join(f"{n} {k.lower()}" for k, n in sorted(report.pii_found.items())) or "none"
    console.print(
        f"read {report.read} trace(s) · {report.failures} failing · {report.groups} group(s) · "
        f"{report.duplicates} already in the set · personal data scrubbed: {pii}"
    )
    if dry_run:
        console.print("dry run: nothing written")
    elif report.version:
        console.print(f"→ {report.path} · dataset version {report.version}")


@app.command("dashboard")
def dashboard(
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("reports/dashboard.html"),
    experiment: Annotated[str | None, typer.Option(help="Experiment (default: FLYWHEEL_EXPERIMENT).")] = None,
    limit: Annotated[int, typer.Option(help="Most recent traces to include.")] = 5000,
) -> None:
    """Write the production dashboard: volume, latency p50/p95, online scores and refusal rate over
    time, and per A/B arm (tag client.arm, else the model version) each score's mean ± 95 % CI.

    Example:
      flywheel monitor dashboard --out reports/dashboard.html && open reports/dashboard.html
    """

    from flywheel.monitoring._dashboard import build_dashboard

    with console.status("Reading traces…"):
        traces = _experiment_traces(experiment, limit)
    gaps = Path("reports/gaps/gaps.fragment.html")  # the last `flywheel monitor gaps`, when there is one
    extra = gaps.read_text(encoding="utf-8") if gaps.is_file() else ""
    path = build_dashboard(traces, out, extra_html=extra)
    console.print(
        f"dashboard of {len(traces)} traces: {path}" + (" (with the knowledge gaps)" if extra else "")
    )


@app.command("gaps")
def gaps(
    experiment: Annotated[str | None, typer.Option(help="Experiment (default: FLYWHEEL_EXPERIMENT).")] = None,
    limit: Annotated[int, typer.Option(min=10, max=20000, help="Newest traces to read.")] = 2000,
    out: Annotated[Path, typer.Option(help="Folder for gaps.md and gaps.html.")] = Path("reports/gaps"),
    distance: Annotated[
        float, typer.Option(min=0.05, max=1.5, help="Cosine distance below which questions join a cluster.")
    ] = 0.6,
    min_size: Annotated[int, typer.Option(min=1, help="Smallest cluster reported.")] = 2,
    add_to: Annotated[
        Path | None, typer.Option(help="Add each cluster's questions to this dataset as a new version.")
    ] = None,
) -> None:
    """Knowledge gaps: production questions the agent abstained on, answered from low-relevance
    excerpts, or that users rated "Not helpful", clustered; each cluster labelled *not covered by the
    docs* (work for the doc writers) or *covered but missed* (a retrieval or answer problem), with its
    nearest pages. Writes gaps.md and gaps.html; --add-to turns the clusters into dataset items
    (should abstain / should answer from page X), de-duplicated against what is there.

    Examples:
      flywheel monitor gaps
      flywheel monitor gaps --limit 5000 --add-to datasets/production.json
    """
    from rich.table import Table

    from flywheel import tracking
    from flywheel.datagen._gaps import find_gaps, gap_items, gap_questions, write_gap_report
    from flywheel.knowledge import KnowledgeBase, scoring_embedder
    from flywheel.stack import require

    cfg = settings()
    require(cfg, "tracking", "index")
    quiet_mlflow()
    tracking.use(cfg)
    with console.status(f"Reading up to {limit} traces…"):
        traces = _experiment_traces(experiment, limit, include_spans=True, cfg=cfg)
    kb = KnowledgeBase(cfg)
    found = gap_questions(list(traces), kb=kb)
    with console.status(f"Clustering {len(found)} gap questions…"):
        clusters = find_gaps(found, kb, scoring_embedder(cfg).embed_documents, distance, min_size)
    paths = write_gap_report(clusters, out, len(found))
    table = Table(title=f"{len(found)} gap questions among {len(traces)} traces", box=None)
    for col in ("#", "label", "size", "representative", "nearest page"):
        table.add_column(col)
    for n, c in enumerate(clusters, 1):
        label = "[yellow]not covered[/]" if c.label == "not_covered" else "[cyan]covered, missed[/]"
        page = f"{c.pages[0]['source']} ({c.pages[0]['score']:.2f})" if c.pages else "-"
        table.add_row(str(n), label, str(c.size), c.representatives[0][:60], page)
    console.print(table)
    console.print(f"report: {paths['markdown']}  ·  {paths['html']}")
    if add_to and clusters:
        from flywheel.evaluation import load_dataset
        from flywheel.monitoring._feedback import add_to_dataset

        items = gap_items(clusters)
        if add_to.exists():  # near-duplicates of what is there are not added twice
            import numpy as np

            have = [i.question for i in load_dataset(add_to).items]
            if have:
                embed = scoring_embedder(cfg).embed_documents
                old = np.asarray(embed(have))
                new = np.asarray(embed([i.question for i in items]))
                old /= np.linalg.norm(old, axis=1, keepdims=True)
                new /= np.linalg.norm(new, axis=1, keepdims=True)
                items = [i for i, row in zip(items, new @ old.T, strict=True) if float(row.max()) < 0.9]
        result = add_to_dataset(cfg, add_to, items)
        console.print(
            f"added {len(result.added)} item(s) to {result.path} ({result.items} items) · dataset version "
            f"{result.version}"
        )
