"""One tune, many workers: the study lives in an Optuna RDB storage (PostgreSQL at scale, any
SQLAlchemy URL) that every ``flywheel tune --worker`` process shares — the way Optuna is designed to
be distributed, with no scheduler of our own.

- **Set-up, once.** Of the processes that run ``flywheel tune --config FILE --storage URL``, the one
  that creates the finalize study (a unique name: one wins) sets the study up and writes into its
  attributes what a worker needs: the tuning file, the context digest (code, LLM, embedder,
  dataset, scorers — a worker with another one refuses to join) and the parent MLflow run. A grid is
  enqueued trial by trial (``enqueue_trial``); one *finalize* trial waits in a study beside it.
- **Claimed once.** A worker claims a waiting trial by moving it WAITING → RUNNING in one row-locked
  transaction (Optuna's own ``set_trial_state_values``; PostgreSQL's ``SELECT … FOR UPDATE``), so two
  workers never run the same configuration. ``strategy: optuna`` asks the TPE sampler for new trials
  until the budget is spent (the count is checked before asking: with W workers it may be exceeded by
  at most W − 1 trials; a configuration the sampler proposes again reuses its finished result).
- **A killed worker loses nothing.** Each running trial records a heartbeat; a trial whose heartbeat
  is older than the grace period is failed by whichever worker notices and re-enqueued by Optuna's
  ``RetryHeartbeatStaleTrialCallback`` with the same parameters; the killed worker's runtime is removed by the
  next runtime GC (its owner process is gone).
- **Registered once.** The finalize trial is claimable only when no other trial is waiting or
  running; the worker that claims it writes the report, logs it to the parent run and registers the
  choice. If that worker dies, its heartbeat lapses and the finalize trial is retried like any other.

Every trial's result is a user attribute of its Optuna trial (``flywheel.result``), so the report is
built from the study alone, on whichever machine finalizes it.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from typing import Any

from flywheel.errors import InputError
from flywheel.tuning._spec import Trial, TuneSpec

__all__ = ["SharedStudy", "redact_url"]

RESULT = "flywheel.result"
KEY = "flywheel.key"
REUSED = "flywheel.reused"
ROLE = "flywheel.role"
FINALIZE = "finalize"


def redact_url(url: str) -> str:
    """The storage URL without its password (for messages and reports)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


class SharedStudy:
    """A tune's Optuna study in shared storage; see the module docstring."""

    def __init__(self, url: str, name: str, heartbeat_s: float = 30.0) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        # heartbeats, their stale-trial retry and fail_stale_trials are "experimental" since 2.8 (2021)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self.url, self.name, self.heartbeat_s = url, name, heartbeat_s
        try:
            self.storage = self._open()
        except Exception as exc:
            raise InputError(
                "tune_storage", url=redact_url(url), error=f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from exc
        self.study: Any = None

    def _open(self) -> Any:
        """The RDB storage; retried a few times because workers that start together on a fresh
        database race to create Optuna's tables (one wins, the others get an IntegrityError)."""
        import optuna
        from sqlalchemy.exc import IntegrityError, ProgrammingError
        from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

        @retry(
            retry=retry_if_exception_type((IntegrityError, ProgrammingError)),
            stop=stop_after_attempt(6),
            wait=wait_random(0.2, 1.5),
            reraise=True,
        )
        def open_() -> Any:
            return optuna.storages.RDBStorage(
                self.url,
                heartbeat_interval=max(1, round(self.heartbeat_s)),
                grace_period=max(3, round(3 * self.heartbeat_s)),
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3),
                engine_kwargs={"pool_pre_ping": True},
            )

        return open_()

    # -- set-up
    def exists(self) -> bool:
        return any(s.study_name == self.name for s in self.storage.get_all_studies())

    def delete(self) -> None:
        import optuna

        names = {s.study_name for s in self.storage.get_all_studies()}
        for name in (self.name, self.name + ":finalize"):
            if name in names:
                optuna.delete_study(study_name=name, storage=self.storage)

    def _final_study(self) -> Any:
        """A one-trial study beside the tune's: its trial is the finalize claim (kept apart so the
        TPE sampler's ask() never pops it); creating it is the set-up claim."""
        import optuna

        return optuna.load_study(study_name=self.name + ":finalize", storage=self.storage)

    def create(
        self, spec: TuneSpec, context: str, parent_run: Callable[[], str | None]
    ) -> tuple[TuneSpec, str, str | None]:
        """Set the study up unless another process already does: the one that creates the
        finalize study (a unique name: exactly one process wins) enqueues the grid; any other joins,
        after checking that it runs the same tuning file and context. Every pod of a Job can run
        the same command. Returns (spec, context, parent run id)."""
        import optuna

        try:
            final = optuna.create_study(study_name=self.name + ":finalize", storage=self.storage)
        except optuna.exceptions.DuplicatedStudyError:
            theirs = self.join()
            self.check_context({"flywheel.context": theirs[1]}, context)
            if theirs[0].digest() != spec.digest():
                raise InputError(
                    "tune_context_mismatch",
                    name=self.name,
                    theirs=f"tuning file {theirs[0].digest()}",
                    ours=f"tuning file {spec.digest()}",
                ) from None
            return theirs
        self.study = optuna.create_study(
            study_name=self.name,
            storage=self.storage,
            direction="maximize",
            # constant_liar: running trials count as bad guesses, so W workers do not all ask for the same point
            sampler=optuna.samplers.TPESampler(seed=spec.seed, constant_liar=True),
            load_if_exists=True,
        )
        parent_run_id = parent_run()
        self.study.set_user_attr("flywheel.spec", spec.model_dump(mode="json", by_alias=True))
        self.study.set_user_attr("flywheel.context", context)
        self.study.set_user_attr("flywheel.parent_run_id", parent_run_id)
        if spec.strategy == "grid":
            for trial in spec.grid():
                self.study.enqueue_trial(trial.labels)
        final.enqueue_trial({}, user_attrs={ROLE: FINALIZE})
        self.study.set_user_attr("flywheel.ready", True)
        return spec, context, parent_run_id

    def join(self, timeout_s: float = 600.0) -> tuple[TuneSpec, str, str | None]:
        """Wait for the coordinator's set-up; (spec, context, parent run id)."""
        import optuna

        deadline = time.monotonic() + timeout_s
        while True:
            if self.exists():
                self.study = optuna.load_study(study_name=self.name, storage=self.storage)
                attrs = self.study.user_attrs
                if attrs.get("flywheel.ready"):
                    spec = TuneSpec.model_validate(attrs["flywheel.spec"])
                    return spec, attrs["flywheel.context"], attrs.get("flywheel.parent_run_id")
            if time.monotonic() >= deadline:
                raise InputError("tune_no_study", name=self.name, url=redact_url(self.url))
            time.sleep(min(2.0, self.heartbeat_s))

    def check_context(self, attrs: dict[str, Any], context: str) -> None:
        if attrs.get("flywheel.context") != context:
            raise InputError(
                "tune_context_mismatch", name=self.name, theirs=attrs.get("flywheel.context"), ours=context
            )

    # -- work
    def _trials(self, states: tuple[Any, ...] | None = None) -> list[Any]:
        return list(self.study.get_trials(deepcopy=False, states=states))

    def _claim(self, study: Any = None) -> Any | None:
        """A waiting trial now RUNNING for this worker (row-locked compare-and-set), or None."""
        import optuna

        study = study or self.study
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
            try:
                if self.storage.set_trial_state_values(t._trial_id, state=optuna.trial.TrialState.RUNNING):
                    self.storage.record_heartbeat(t._trial_id)  # from now on a kill is noticed
                    return self.storage.get_trial(t._trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
        return None

    def _others_pending(self) -> bool:
        import optuna

        states = (optuna.trial.TrialState.WAITING, optuna.trial.TrialState.RUNNING)
        return bool(self._trials(states))

    @contextmanager
    def _heartbeat(self, trial_id: int) -> Iterator[None]:
        stop = threading.Event()

        def beat() -> None:
            while not stop.is_set():
                with suppress(Exception):  # the database is briefly away: the next beat retries
                    self.storage.record_heartbeat(trial_id)
                stop.wait(self.heartbeat_s)

        thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5)

    def _budget_left(self, total: int) -> bool:
        import optuna

        counted = (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.RUNNING,
            optuna.trial.TrialState.WAITING,
        )
        return len(self._trials(counted)) < total

    def work(
        self,
        spec: TuneSpec,
        run_trial: Callable[[Trial], Any],
        on_trial: Callable[[Any], None],
        on_stale: Callable[[], None],
        total: int,
    ) -> int:
        """Run trials until none is waiting or running (and, for optuna, the budget is spent);
        returns how many this worker ran."""
        import optuna

        ran = 0
        dims = spec.dimensions()
        while True:
            before = len(self._trials((optuna.trial.TrialState.FAIL,)))
            optuna.storages.fail_stale_trials(self.study)  # a dead worker's trial: back in the queue
            if len(self._trials((optuna.trial.TrialState.FAIL,))) > before:
                on_stale()
            frozen = self._claim()
            if frozen is not None:
                ot = optuna.Trial(self.study, frozen._trial_id)
            elif spec.strategy == "optuna" and self._budget_left(total):
                with warnings.catch_warnings():  # "heartbeat … used with Study.optimize": ours beats
                    warnings.simplefilter("ignore", UserWarning)
                    ot = self.study.ask()
                self.storage.record_heartbeat(ot._trial_id)
            elif self._others_pending():
                time.sleep(min(2.0, self.heartbeat_s))  # one may die and come back: stay to take it
                continue
            else:
                return ran
            trial_id = ot._trial_id
            labels = {d: ot.suggest_categorical(d, [label for label, _ in dims[d]]) for d in dims}
            trial = spec.trial(labels)
            self.storage.set_trial_user_attr(trial_id, KEY, trial.key)
            seen = self._completed(trial.key, trial_id)
            if seen is not None:  # the sampler proposed a finished configuration: its result again
                self.storage.set_trial_user_attr(trial_id, REUSED, True)
                self.storage.set_trial_user_attr(trial_id, RESULT, seen.user_attrs[RESULT])
                self.study.tell(ot, seen.value)
                continue
            with self._heartbeat(trial_id):
                res = run_trial(trial)
            self.storage.set_trial_user_attr(
                trial_id, RESULT, json.loads(json.dumps(asdict(res), default=str))
            )
            if res.error or res.quality is None:
                self.study.tell(ot, state=optuna.trial.TrialState.FAIL)
            else:
                # an infeasible trial ranks below every feasible one (for the TPE sampler)
                self.study.tell(ot, res.quality if res.feasible else res.quality - 1.0)
            ran += 1
            on_trial(res)

    def _completed(self, key: str, mine: int) -> Any | None:
        """A finished trial of the same configuration (waiting for one another worker is running)."""
        import optuna

        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING)
        while True:
            same = [t for t in self._trials(states) if t.user_attrs.get(KEY) == key and t._trial_id != mine]
            done = [t for t in same if t.state == optuna.trial.TrialState.COMPLETE and RESULT in t.user_attrs]
            if done:
                return done[0]
            if not same:
                return None
            time.sleep(min(2.0, self.heartbeat_s))

    @contextmanager
    def finalizing(self) -> Iterator[bool]:
        """Yields True in the one worker that claims the finalize trial (then: report, register)."""
        import optuna

        final = self._final_study()
        optuna.storages.fail_stale_trials(final)  # a finalizer that died: its claim is free again
        frozen = self._claim(final)
        if frozen is not None and self._others_pending():
            # a dead worker's trial came back meanwhile: whoever runs it finalizes after it
            self.storage.set_trial_state_values(frozen._trial_id, state=optuna.trial.TrialState.WAITING)
            frozen = None
        if frozen is None:
            yield False
            return
        try:
            with self._heartbeat(frozen._trial_id):
                yield True
        except BaseException:
            # the report or the registration failed: give the finalize claim back for a rerun
            final.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
            final.enqueue_trial({}, user_attrs={ROLE: FINALIZE})
            raise
        final.tell(frozen.number, 0.0)

    def results(self) -> list[dict[str, Any]]:
        """Every trial result recorded in the study (completed and failed, retries included)."""
        return [
            t.user_attrs[RESULT]
            for t in self._trials()
            if RESULT in t.user_attrs and not t.user_attrs.get(REUSED)
        ]

    def summary(self) -> dict[str, int]:
        import optuna

        out: dict[str, int] = {}
        for t in self._trials():
            out[t.state.name.lower()] = out.get(t.state.name.lower(), 0) + 1
        states = (optuna.trial.TrialState.COMPLETE,)
        ran = [t for t in self._trials(states) if not t.user_attrs.get(REUSED)]
        out["reused"] = len(self._trials(states)) - len(ran)
        keys = [t.user_attrs.get(RESULT, {}).get("key") for t in ran]
        keys = [k for k in keys if k]
        out["duplicates"] = len(keys) - len(set(keys))  # the same configuration completed twice
        return out
