"""`flywheel eval`: evaluate an agent on a golden dataset; `flywheel eval compare A B`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flywheel.cli._common import agent_config, console, progress_bar, quiet_mlflow, settings

app = typer.Typer(
    help="Evaluate an agent on a golden dataset (run with options), or compare two evaluations.",
    invoke_without_command=True,
)


def _thresholds(items: list[str] | None) -> dict[str, float]:
    from flywheel.errors import InputError

    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InputError("fail_under_syntax", item=item)
    return out


@app.callback()
def evaluate(
    ctx: typer.Context,
    dataset: Annotated[Path, typer.Option(help="Golden dataset (.json seed format, .jsonl, .csv).")] = Path(
        "datasets/flywheel-docs-golden.json"
    ),
    target: Annotated[str, typer.Option(help="local | http://host:5005 | models:/NAME@ALIAS")] = "local",
    concurrency: Annotated[
        int | None, typer.Option(help="Items in flight (default FLYWHEEL_EVAL_CONCURRENCY=4).")
    ] = None,
    scorer: Annotated[
        list[str] | None, typer.Option("--scorer", help="Scorers to run (default: all).")
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="AgentConfig override KEY=VALUE (local target).")
    ] = None,
    fail_under: Annotated[
        list[str] | None, typer.Option("--fail-under", help="METRIC=MIN; exit 1 if below.")
    ] = None,
    fresh: Annotated[bool, typer.Option(help="Ignore results of an interrupted earlier run.")] = False,
    reports: Annotated[Path, typer.Option(help="Where report.md / report.html go.")] = Path("reports"),
    name: Annotated[str | None, typer.Option(help="MLflow run name.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")] = False,
    only: Annotated[
        str | None,
        typer.Option(
            help="Only items whose state against the index is one of: stale (changed, or updated by the "
            "last refresh), new (added by it), fresh, orphaned, unanchored; comma-separated."
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(help="I/N: evaluate only the items whose id hashes to I of N (one worker of N)."),
    ] = None,
    merge: Annotated[
        int | None,
        typer.Option(help="N: merge the finished runs of the N shards into one run and report."),
    ] = None,
) -> None:
    """Evaluate a target on a golden dataset: scores per item (also as assessments on each trace),
    one MLflow run with aggregate metrics and the version identity, Markdown and HTML reports.

    Interrupted? Run the same command again: finished items are not re-run.
    Exit codes: 0 done, 1 a --fail-under threshold was missed, 2 error.

    Examples:
      flywheel eval --dataset datasets/flywheel-docs-golden.json --target local
      flywheel eval --target http://127.0.0.1:5005 --fail-under refusal=1.0
      flywheel eval --target models:/docs-qa-agent@champion --concurrency 8
      flywheel eval --dataset datasets/generated.json --only stale,new
      flywheel eval compare RUN_ID_A RUN_ID_B

    Split over N workers (any machines; a Kubernetes Indexed Job), then one run for the whole set:
      flywheel eval --target http://agent:5005 --shard 0/4     # … 1/4, 2/4, 3/4
      flywheel eval --target http://agent:5005 --merge 4
    """
    if ctx.invoked_subcommand:
        return
    from flywheel.evaluation import (
        DEFAULT_SCORERS,
        EvalOptions,
        judge_identity,
        load_dataset,
        make_judge,
        make_scorer,
        make_target,
        run_evaluation,
        scorer_context,
    )

    quiet_mlflow()
    cfg = settings()
    limits = _thresholds(fail_under)
    ds = load_dataset(dataset)
    if only:
        ds = _only(cfg, ds, only)
    scorers = [make_scorer(s) for s in (scorer or DEFAULT_SCORERS)]
    from flywheel.stack import require

    if merge is not None:
        _merge(cfg, ds, target, scorers, set_, merge, name, reports, json_out, limits)
        return
    if target.startswith("models:/"):
        require(cfg, "tracking")  # the registered version is loaded from the tracking server
    elif target == "local":
        policy = agent_config(set_).policy
        require(cfg, "index", *(["llm"] if policy != "grounded" else []))
    with console.status(f"Preparing target {target}…"):
        tgt = make_target(target, cfg, agent_config(set_) if set_ else None)
        context = scorer_context(cfg, make_judge(cfg))
    tags: dict[str, str] = {}
    if shard:
        from flywheel.evaluation._shards import (
            eval_group,
            parse_shard,
            shard_dataset,
            shard_tags,
            target_stub,
        )

        index, count = parse_shard(shard)
        whole = EvalOptions(ds, target_stub(target), scorers, judge=judge_identity(cfg))
        tags = shard_tags(eval_group(whole, json.dumps(sorted(set_ or []))), index, count)
        ds = shard_dataset(ds, index, count)
        name = f"{name or 'eval-' + ds.name}-shard{index}of{count}"
    counts = ", ".join(f"{k} {v}" for k, v in ds.counts().items())
    console.print(
        f"dataset [bold]{ds.name}[/] ({len(ds.items)} items: {counts}; digest {ds.digest}) → target "
        f"[bold]{target}[/] · judge: {cfg.judge_model if context.judge else 'none (local scorers)'}"
    )
    with progress_bar("eval", eta=True) as bar:
        task = bar.add_task("", total=len(ds.items))

        def progress(done: int, total: int, item) -> None:  # type: ignore[no-untyped-def]
            bar.update(task, completed=done, description=item.id)

        result = run_evaluation(
            cfg,
            EvalOptions(
                ds,
                tgt,
                scorers,
                context,
                concurrency or cfg.eval_concurrency,
                run_name=name,
                judge=judge_identity(cfg),
                tags=tags,
            ),
            progress,
        )
    _report(result, reports, json_out, limits)


def _merge(cfg, ds, target, scorers, set_, shards, name, reports, json_out, limits) -> None:  # type: ignore[no-untyped-def]
    from flywheel.evaluation import EvalOptions, judge_identity
    from flywheel.evaluation._shards import eval_group, merge_shards, target_stub
    from flywheel.stack import require

    require(cfg, "tracking")
    options = EvalOptions(ds, target_stub(target), scorers, judge=judge_identity(cfg), run_name=name)
    group = eval_group(options, json.dumps(sorted(set_ or [])))
    with console.status(f"merging {shards} shards of evaluation {group}…"):
        result = merge_shards(cfg, options, shards, group)
    console.print(f"merged {shards} shards: {len(result.items)} items in run {result.run_id}")
    _report(result, reports, json_out, limits)


def _report(result, reports, json_out, limits) -> None:  # type: ignore[no-untyped-def]
    from flywheel.evaluation import write_reports

    ds_name, digest = result.dataset, result.digest
    folder = reports / (result.run_id or f"{ds_name}-{digest}")
    paths = write_reports(result, folder)
    if json_out:
        print(json.dumps({"run_id": result.run_id, "metrics": result.metrics}, indent=2))
    else:
        _print_summary(result, paths)
    missed = {k: (result.metrics.get(k), v) for k, v in limits.items() if result.metrics.get(k, -1.0) < v}
    for k, (got, want) in missed.items():
        console.print(f"[red]fail-under:[/] {k} = {got if got is not None else 'missing'} < {want}")
    if missed:
        sys.exit(1)


def _only(cfg, ds, only: str):  # type: ignore[no-untyped-def]
    """The items of ``ds`` in the states named by ``only`` (checked against the index)."""
    from flywheel.datagen._sync import STATUSES, corpus_for, select
    from flywheel.errors import InputError

    wanted = [w.strip() for w in only.split(",") if w.strip()]
    allowed = [*STATUSES, "new"]
    bad = [w for w in wanted if w not in allowed]
    if bad or not wanted:
        raise InputError("eval_only", value=only, allowed=", ".join(allowed))
    from flywheel.stack import require

    require(cfg, "index")
    _, corpus = corpus_for(cfg, ds)
    chosen = select(ds, corpus, wanted)
    if not chosen.items:
        raise InputError("eval_only_empty", value=only, name=ds.name)
    console.print(f"--only {only}: {len(chosen.items)} of {len(ds.items)} items")
    return chosen


def _print_summary(result, paths) -> None:  # type: ignore[no-untyped-def]
    from flywheel.evaluation import kind_table

    header, rows = kind_table(result)
    short = {
        "response_facts": "facts",
        "factuality": "factual",
        "citations": "cite",
        "trajectory": "traj",
        "search_term": "term",
        "refusal": "refuse",
        "abstention": "abstain",
        "response_quality": "quality",
        "response_length": "length",
        "latency": "latency",
        "happy_path": "happy",
        "out_of_scope": "oos",
    }
    table = Table(title=f"{result.dataset} → {result.target}", box=None, pad_edge=False)
    for h in header:
        table.add_column(short.get(h, h), justify="right" if h != "kind" else "left")
    rows = [[short.get(r[0], r[0]), *r[1:]] for r in rows]
    for r in rows:
        table.add_row(*r)
    console.print(table)
    console.print(
        f"items {len(result.items)} (resumed {result.resumed}) · errors {int(result.metrics.get('errors', 0))} · "
        f"latency p50 {result.metrics.get('latency_p50_ms', 0):.0f} ms · {result.seconds:.1f} s"
    )
    console.print(f"MLflow run: {result.run_id or '- (tracking server not reachable)'}")
    console.print(f"reports: {paths['markdown']}  ·  {paths['html']}")


@app.command("compare")
def compare_cmd(
    run_a: Annotated[str, typer.Argument(help="MLflow run id or results .jsonl (the baseline).")],
    run_b: Annotated[str, typer.Argument(help="MLflow run id or results .jsonl (the candidate).")],
    limit: Annotated[int, typer.Option(help="Most changed items to show.")] = 20,
) -> None:
    """Per-item differences between two evaluations (B − A).

    Example: flywheel eval compare 3f2c… 9a41…
    """
    from flywheel.evaluation import compare, load_items

    cfg = settings()
    diff = compare(load_items(run_a, cfg), load_items(run_b, cfg))
    console.print(f"shared items {diff['shared']} · only in A {diff['only_a']} · only in B {diff['only_b']}")
    table = Table(title="mean change per scorer (B − A)", box=None, pad_edge=False)
    table.add_column("scorer")
    table.add_column("Δ", justify="right")
    for k, v in sorted(diff["mean_delta"].items()):
        style = "green" if v > 0 else "red" if v < 0 else ""
        table.add_row(k, f"[{style}]{v:+.3f}[/]" if style else f"{v:+.3f}")
    console.print(table)
    rows = Table(title="changed items", box=None, pad_edge=False)
    for col in ("id", "kind", "scorer", "A", "B", "Δ"):
        rows.add_column(col)
    for r in diff["changed"][:limit]:
        rows.add_row(r["id"], r["kind"], r["scorer"], f"{r['a']:.2f}", f"{r['b']:.2f}", f"{r['delta']:+.2f}")
    console.print(rows)
