"""`flywheel tune`: search agent configurations, choose one on evidence, register it as `challenger`.

Each trial: deploy the configuration as a temporary runtime (``purpose=tune``) → evaluate it on the
dataset (an MLflow run, child of the tune's parent run) → delete the runtime (always: ``finally``;
the CLI turns SIGTERM into the same path; ``flywheel runtime gc`` and the next tune remove what a
kill -9 leaked).

Quality is the weighted mean of the ``objective`` metrics; a trial is *feasible* when it meets every
``constraint`` (by default: every adversarial question refused) and had no errors. Among feasible
trials the Pareto front on (quality ↑, latency p50 ↓, cost ↓) is reported, and the choice is the
fastest (then cheapest) front trial whose quality is within ``tolerance`` of the best — so a trial
that is 0.5 % better but twice as slow does not win on noise.

Resumable: finished trials are kept in ``data/tune/<study>/trials.jsonl`` keyed by their
configuration, the Optuna study in ``optuna.db`` (SQLite); rerunning the same tune file skips what
is done. Strategy ``grid`` runs every combination; ``optuna`` runs a TPE search with a trial budget.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from flywheel.config import Settings
from flywheel.errors import InputError
from flywheel.tuning._spec import Trial, TuneSpec

__all__ = ["TrialResult", "TuneResult", "choose", "pareto_front", "run_tune", "run_tune_worker"]


@dataclass
class TrialResult:
    key: str
    labels: dict[str, str]
    overrides: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    quality: float | None = None
    latency_p50_ms: float | None = None
    cost_usd: float = 0.0  # per question
    tokens: float = 0.0  # per question, input + output
    feasible: bool = False
    violations: list[str] = field(default_factory=list)
    run_id: str | None = None
    identity: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    context: str = ""  # digest of what else the result depends on (code, LLM, embedder, dataset, scorers)

    def label(self) -> str:
        return " · ".join(f"{k}={v}" for k, v in self.labels.items())


@dataclass
class TuneResult:
    study: str
    folder: Path
    trials: list[TrialResult]
    front: list[str]  # keys of the Pareto front
    best: TrialResult | None
    parent_run_id: str | None
    resumed: int = 0
    leaked_removed: list[str] = field(default_factory=list)
    registered: dict[str, Any] | None = None
    seconds: float = 0.0
    failed: list[TrialResult] = field(default_factory=list)  # trials of this run that errored
    finalized: bool = True  # False: a shared study's worker that left the report to another
    ran: int = 0  # trials this process ran (a shared study's worker)


def _dominates(a: TrialResult, b: TrialResult) -> bool:
    qa, qb = a.quality or 0.0, b.quality or 0.0
    la, lb = a.latency_p50_ms or math.inf, b.latency_p50_ms or math.inf
    no_worse = qa >= qb and la <= lb and a.cost_usd <= b.cost_usd
    better = qa > qb or la < lb or a.cost_usd < b.cost_usd
    return no_worse and better


def pareto_front(trials: list[TrialResult]) -> list[TrialResult]:
    """Feasible trials no other feasible trial beats on quality, latency and cost at once."""
    ok = [t for t in trials if t.feasible and t.quality is not None]
    return [t for t in ok if not any(_dominates(o, t) for o in ok if o is not t)]


def choose(front: list[TrialResult], tolerance: float) -> TrialResult | None:
    """The fastest, then cheapest, front trial within ``tolerance`` of the best quality."""
    if not front:
        return None
    top = max(t.quality or 0.0 for t in front)
    near = [t for t in front if (t.quality or 0.0) >= top - tolerance - 1e-9]
    return min(near, key=lambda t: (t.latency_p50_ms or math.inf, t.cost_usd, -(t.quality or 0.0)))


def _quality(metrics: dict[str, float], weights: dict[str, float]) -> float | None:
    parts = [(w, metrics[m]) for m, w in weights.items() if m in metrics and w > 0]
    if not parts:
        return None
    return round(sum(w * v for w, v in parts) / sum(w for w, _ in parts), 4)


def _measure(spec: TuneSpec, trial: Trial, result: Any) -> TrialResult:
    metrics = dict(result.metrics)
    usage = [i.output.get("usage") or {} for i in result.items]
    tin = sum(u.get("input_tokens", 0) for u in usage) / max(1, len(usage))
    tout = sum(u.get("output_tokens", 0) for u in usage) / max(1, len(usage))
    price = spec.price_per_mtok.get(trial.labels.get("model", ""), {})
    cost = (tin * price.get("input", 0.0) + tout * price.get("output", 0.0)) / 1e6
    violations = [
        f"{m} {metrics.get(m, float('nan')):.3f} < {floor}"
        for m, floor in spec.constraints.items()
        if m in metrics and metrics[m] < floor - 1e-9
    ]
    if metrics.get("errors"):
        violations.append(f"{int(metrics['errors'])} item(s) failed")
    return TrialResult(
        key=trial.key,
        labels=trial.labels,
        overrides=trial.overrides,
        metrics=metrics,
        quality=_quality(metrics, spec.objective),
        latency_p50_ms=metrics.get("latency_p50_ms"),
        cost_usd=round(cost, 8),
        tokens=round(tin + tout, 1),
        feasible=not violations,
        violations=violations,
        run_id=result.run_id,
        seconds=round(result.seconds, 1),
    )


class _Store:
    """trials.jsonl: one finished trial per line, keyed by its configuration (the resume state)."""

    def __init__(self, folder: Path, context: str) -> None:
        self.path = folder / "trials.jsonl"
        self.context = context
        self.lock = threading.Lock()
        self.done: dict[str, TrialResult] = {}
        self.failed: list[TrialResult] = []  # in this run (errored trials run again on resume)
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    t = TrialResult(**json.loads(line))
                except (ValueError, TypeError):
                    continue  # a line cut by a kill: that trial runs again
                if t.error is None and t.context == context:  # another commit, LLM or dataset: run again
                    self.done[t.key] = t

    def add(self, t: TrialResult) -> None:
        t.context = self.context
        with self.lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(t), default=str) + "\n")
            if t.error is None:
                self.done[t.key] = t
            else:
                self.failed.append(t)


@dataclass
class _Prepared:
    """What every trial of one tune shares, in this process."""

    settings: Settings
    spec: TuneSpec
    study: str
    folder: Path
    dataset: Any
    scorers: list[Any]
    context: str
    scoring: Any
    runtimes: Any
    leaked: list[str]


def _prepare(settings: Settings, spec: TuneSpec, name: str | None, fresh: bool, on_event: Any) -> _Prepared:
    from flywheel.agent import default_config
    from flywheel.evaluation import load_dataset, make_scorer, scorer_context
    from flywheel.runtime import runtimes_for

    dataset = load_dataset(spec.dataset)
    if spec.split == "train":
        dataset = dataset.split("train")
    if spec.per_kind:
        dataset = dataset.take(spec.per_kind)
    metric_names = dict.fromkeys([*spec.scorers, *spec.objective, *spec.constraints, "latency"])
    scorers = [make_scorer(n) for n in metric_names if n not in ("latency_p50_ms", "latency_p95_ms")]
    context = _context(settings, dataset, scorers)
    study = name or f"tune-{spec.digest()}-{dataset.digest[:6]}"
    folder = settings.data_path / "tune" / study
    if fresh and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(spec.model_dump_json(indent=2), encoding="utf-8")
    for trial in spec.grid():  # an invalid value fails here, naming the trial, before any runtime starts
        _validate(settings, trial, default_config)
    runtimes = runtimes_for(settings)
    leaked = runtimes.gc()
    if leaked:
        on_event(f"removed {len(leaked)} leaked runtime(s): {', '.join(leaked)}")
    return _Prepared(
        settings, spec, study, folder, dataset, scorers, context, scorer_context(settings), runtimes, leaked
    )


def _trial_runner(
    prep: _Prepared, parent: str | None, done: dict[str, TrialResult], store: Any, on_event: Any
) -> Any:
    """run_trial(trial) → TrialResult: deploy, evaluate, delete; a finished key is not run again."""

    def run_trial(trial: Trial) -> TrialResult:
        if trial.key in done:
            return done[trial.key]
        from flywheel.runtime import deploy_and_evaluate

        t_start = time.monotonic()
        on_event(f"trial {trial.label()}: deploying")
        try:
            result, vid = deploy_and_evaluate(
                prep.settings,
                prep.runtimes,
                name=f"tune-{prep.study[-6:]}-{trial.key[:8]}-{uuid.uuid4().hex[:4]}",
                purpose="tune",
                model_uri=None,
                config=trial.overrides,
                dataset=prep.dataset,
                scorers=prep.scorers,
                context=prep.scoring,
                results_dir=prep.folder / "evals" / trial.key,  # one per trial: workers share the folder
                parent_run_id=parent,
                tags={
                    "flywheel.kind": "tune-trial",
                    "flywheel.tune": prep.study,
                    **{f"tune.{k}": str(v)[:250] for k, v in trial.labels.items()},
                },
                on_deployed=lambda rt: on_event(
                    f"trial {trial.label()}: evaluating {len(prep.dataset.items)} items"
                ),
            )
            out = _measure(prep.spec, trial, result)
            out.identity = {**vid.compact(), "identity_digest": vid.digest()}
        except Exception as exc:  # one failed trial is recorded, the search goes on
            out = TrialResult(
                trial.key,
                trial.labels,
                trial.overrides,
                error=f"{type(exc).__name__}: {exc}"[:500],
                seconds=round(time.monotonic() - t_start, 1),
            )
        out.context = prep.context
        if store is not None:
            store.add(out)
        return out

    return run_trial


def run_tune(
    settings: Settings,
    spec: TuneSpec,
    *,
    name: str | None = None,
    fresh: bool = False,
    register: bool = True,
    on_event: Any = lambda msg: None,
    on_trial: Any = lambda done, total, trial: None,
    storage: str | None = None,
) -> TuneResult:
    """Run the tune in this process; with ``storage`` (an RDB URL) the study is shared and this
    process is its coordinator and first worker (more join with :func:`run_tune_worker`)."""
    t0 = time.monotonic()
    prep = _prepare(settings, spec, name, fresh, on_event)
    if storage:
        from flywheel.tuning._distributed import SharedStudy

        shared = SharedStudy(storage, prep.study, settings.tune_heartbeat_s)
        if fresh:
            shared.delete()
        _, _, parent = shared.create(
            spec, prep.context, lambda: _parent_run(settings, prep.folder, prep.study, spec, prep.dataset)
        )
        on_event(f"study {prep.study} ready: workers may join (flywheel tune --worker --name {prep.study})")
        return _work_shared(prep, shared, parent, register, on_event, on_trial, t0)

    store = _Store(prep.folder, prep.context)
    resumed = len(store.done)
    parent = _parent_run(settings, prep.folder, prep.study, spec, prep.dataset)
    run_trial = _trial_runner(prep, parent, store.done, store, on_event)
    grid = spec.grid()
    if spec.strategy == "grid":
        total = len(grid)
        todo = [t for t in grid if t.key not in store.done]
        done_n = total - len(todo)
        if done_n:
            on_event(f"resuming: {done_n} of {total} trials already done")
        with cf.ThreadPoolExecutor(max_workers=spec.parallel, thread_name_prefix="tune") as pool:
            futures = {pool.submit(run_trial, t): t for t in todo}
            for fut in cf.as_completed(futures):
                done_n += 1
                on_trial(done_n, total, fut.result())
    else:
        _optuna(
            spec,
            prep.folder,
            f"{prep.study}-{prep.context}",
            run_trial,
            on_trial,
            on_event,
            total=spec.n_trials or min(len(grid), 10),
        )
    return _finish(prep, store.done, store.failed, parent, resumed, register, on_event, t0)


def run_tune_worker(
    settings: Settings,
    storage: str,
    name: str,
    *,
    register: bool = True,
    on_event: Any = lambda msg: None,
    on_trial: Any = lambda done, total, trial: None,
    join_timeout_s: float = 600.0,
) -> TuneResult:
    """Join the shared study ``name`` (waiting for its coordinator), run trials until none is left;
    the worker that finishes last writes the report and registers the choice."""
    from flywheel.tuning._distributed import SharedStudy

    t0 = time.monotonic()
    shared = SharedStudy(storage, name, settings.tune_heartbeat_s)
    on_event(f"waiting for study {name}")
    spec, context, parent = shared.join(join_timeout_s)
    prep = _prepare(settings, spec, name, False, on_event)
    shared.check_context({"flywheel.context": context}, prep.context)
    return _work_shared(prep, shared, parent, register, on_event, on_trial, t0)


def _work_shared(
    prep: _Prepared,
    shared: Any,
    parent: str | None,
    register: bool,
    on_event: Any,
    on_trial: Any,
    t0: float,
) -> TuneResult:
    spec = prep.spec
    total = len(spec.grid()) if spec.strategy == "grid" else (spec.n_trials or min(len(spec.grid()), 10))
    failed: list[TrialResult] = []
    lock = threading.Lock()
    counter = {"n": 0}

    def done_one(res: TrialResult) -> None:
        with lock:
            counter["n"] = sum(1 for r in shared.results() if not r.get("error"))
            if res.error:
                failed.append(res)
            on_trial(counter["n"], total, res)

    def stale() -> None:
        gone = prep.runtimes.gc()  # the dead worker's runtime: its owner process is gone
        on_event(f"a worker died: its trial is queued again; removed {len(gone)} runtime(s)")

    run_trial = _trial_runner(prep, parent, {}, None, on_event)
    with cf.ThreadPoolExecutor(max_workers=spec.parallel, thread_name_prefix="tune") as pool:
        futures = [
            pool.submit(shared.work, spec, run_trial, done_one, stale, total) for _ in range(spec.parallel)
        ]
        ran = sum(f.result() for f in futures)
    with shared.finalizing() as mine:
        done: dict[str, TrialResult] = {}
        for raw in shared.results():
            if not raw.get("error"):
                done[raw["key"]] = TrialResult(**raw)
        if not mine:
            return TuneResult(
                prep.study,
                prep.folder,
                list(done.values()),
                [],
                None,
                parent,
                0,
                prep.leaked,
                failed=failed,
                seconds=round(time.monotonic() - t0, 1),
                finalized=False,
                ran=ran,
            )
        prep.leaked += prep.runtimes.gc()
        result = _finish(prep, done, failed, parent, 0, register, on_event, t0)
        result.ran = ran
        return result


def _finish(
    prep: _Prepared,
    done: dict[str, TrialResult],
    failed: list[TrialResult],
    parent: str | None,
    resumed: int,
    register: bool,
    on_event: Any,
    t0: float,
) -> TuneResult:
    from flywheel.agent import default_config

    spec = prep.spec
    trials = _trials_in_order(spec, done)
    if failed and not trials:
        first = failed[0]
        raise InputError(
            "tune_failed", n=len(failed), trial=first.label(), error=first.error, folder=prep.folder
        )
    front = pareto_front(trials)
    best = choose(front, spec.tolerance)
    result = TuneResult(
        prep.study,
        prep.folder,
        trials,
        [t.key for t in front],
        best,
        parent,
        resumed,
        prep.leaked,
        failed=failed,
    )
    if best and register and spec.register_as:
        on_event(f"registering the best configuration ({best.label()})")
        result.registered = _register(prep.settings, spec, best, prep.study, default_config)
    result.seconds = round(time.monotonic() - t0, 1)
    from flywheel.tuning._report import write_report

    paths = write_report(result, spec)
    _close_parent(prep.settings, result, paths)
    return result


def _context(settings: Settings, dataset: Any, scorers: list[Any]) -> str:
    """What a trial's result depends on besides its configuration: reusing a result after any of
    these changed would compare different things (VersionIdentity's fields)."""
    import hashlib

    from flywheel.evaluation import scorer_spec
    from flywheel.tracking import git_commit

    parts = [
        git_commit(),
        settings.llm_model,
        settings.llm_url,
        settings.embedding_model,
        dataset.digest,
        ";".join(scorer_spec(s) for s in scorers),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def _validate(settings: Settings, trial: Trial, default_config: Any) -> None:
    from pydantic import ValidationError

    try:
        default_config(settings, **trial.overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(
            "set_value",
            field=".".join(str(x) for x in err["loc"]),
            detail=f"{err['msg']} (trial {trial.label()})",
        ) from exc


def _trials_in_order(spec: TuneSpec, done: dict[str, TrialResult]) -> list[TrialResult]:
    """Finished trials of this spec: grid order first, then any others (optuna) by quality."""
    keys = [t.key for t in spec.grid()]
    seen = [done[k] for k in keys if k in done]
    rest = [t for k, t in done.items() if k not in keys]
    return seen + sorted(rest, key=lambda t: -(t.quality or 0))


def _optuna(
    spec: TuneSpec,
    folder: Path,
    study_name: str,
    run_trial: Any,
    on_trial: Any,
    on_event: Any,
    total: int,
) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'optuna.db'}")
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=spec.seed),
        load_if_exists=True,
    )
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)  # killed mid-trial: run it again
    finished = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if finished:
        on_event(f"resuming: {finished} of {total} trials already done")
    dims = spec.dimensions()
    counter = {"n": finished}
    lock = threading.Lock()

    def objective(ot: optuna.Trial) -> float:
        labels = {
            d: ot.suggest_categorical(d, [label for label, _ in choices]) for d, choices in dims.items()
        }
        res = run_trial(spec.trial(labels))
        with lock:
            counter["n"] += 1
            on_trial(counter["n"], total, res)
        if res.error or res.quality is None:
            raise optuna.TrialPruned(res.error or "no quality")
        ot.set_user_attr("latency_p50_ms", res.latency_p50_ms)
        return res.quality if res.feasible else res.quality - 1.0  # infeasible ranks below all feasible

    remaining = max(0, total - finished)
    if remaining:
        study.optimize(objective, n_trials=remaining, n_jobs=spec.parallel, catch=())


def _parent_run(settings: Settings, folder: Path, study: str, spec: TuneSpec, dataset: Any) -> str | None:
    """The tune's parent MLflow run (reused on resume); None when the tracking server is down."""
    from flywheel.tracking import client, tracking_reachable

    state_path = folder / "state.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    if not tracking_reachable(settings):
        return None
    c = client(settings)
    if state.get("parent_run_id"):
        try:
            c.update_run(state["parent_run_id"], status="RUNNING")
            return str(state["parent_run_id"])
        except Exception:  # deleted meanwhile: start a new one
            pass
    exp = c.get_experiment_by_name(settings.experiment)
    exp_id = exp.experiment_id if exp else c.create_experiment(settings.experiment)
    from flywheel.tracking import git_commit

    run = c.create_run(
        exp_id,
        run_name=study,
        tags={"flywheel.kind": "tune", "flywheel.git_commit": git_commit(), "flywheel.tune": study},
    )
    run_id = run.info.run_id
    c.log_param(run_id, "strategy", spec.strategy)
    c.log_param(run_id, "dataset", dataset.name)
    c.log_param(run_id, "dataset_digest", dataset.digest)
    c.log_param(run_id, "dimensions", ",".join(spec.dimensions()))
    c.log_artifact(run_id, str(folder / "spec.json"))
    state_path.write_text(json.dumps({"parent_run_id": run_id}))
    return str(run_id)


def _close_parent(settings: Settings, result: TuneResult, paths: dict[str, Path]) -> None:
    if not result.parent_run_id:
        return
    from mlflow.entities import Metric, RunTag

    from flywheel.tracking import client

    c = client(settings)
    now = int(time.time() * 1000)
    metrics: dict[str, float] = {
        "trials": len(result.trials),
        "feasible": sum(t.feasible for t in result.trials),
        "pareto_front": len(result.front),
    }
    tags = {}
    if result.best:
        metrics.update(
            {
                "best_quality": result.best.quality or 0.0,
                "best_latency_p50_ms": result.best.latency_p50_ms or 0.0,
                "best_cost_usd": result.best.cost_usd,
            }
        )
        tags = {"best_trial": result.best.label()[:250], "best_run_id": result.best.run_id or ""}
        if result.registered:
            tags["registered"] = result.registered["model_uri"]
    c.log_batch(
        result.parent_run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    for path in paths.values():
        c.log_artifact(result.parent_run_id, str(path), artifact_path="tune")
    c.set_terminated(result.parent_run_id)


def _register(
    settings: Settings, spec: TuneSpec, best: TrialResult, study: str, default_config: Any
) -> dict[str, Any]:
    from flywheel.registry import log_agent
    from flywheel.tracking import client

    assert spec.register_as
    reg_name = spec.register_as.get("name", "docs-qa-agent")
    alias = settings.alias(spec.register_as.get("alias", "challenger"))
    logged = log_agent(settings, default_config(settings, **best.overrides), name=reg_name, alias=alias)
    c = client(settings)
    for k, v in {
        "tune_study": study,
        "tune_trial": best.label()[:250],
        "tune_quality": f"{best.quality}",
        "identity_digest": best.identity.get("identity_digest", ""),
    }.items():
        c.set_model_version_tag(reg_name, str(logged.version), k, v)
    return {"name": reg_name, "version": logged.version, "alias": alias, "model_uri": logged.model_uri}
