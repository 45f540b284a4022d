"""Online evaluation: follow the production experiment's new traces, sample them, score them with
the same scorer objects as offline evaluation (reference-free ones), record assessments.

- **Cursor, so it resumes.** The state file (``data/monitor/<experiment id>[-<selection>].json``,
  one per combination of filters and sample rate) holds the
  timestamp cursor, the ids already handled inside a look-back window (traces can arrive late: the
  agent server's spool delivers them after a tracking-server outage) and the counters.
- **Sampling** is decided by a hash of the trace id, so a resumed or a second monitor makes the same
  choice, and every A/B arm is sampled at the same rate (stratified in expectation). ``filters``
  keep only traces whose tags match (``client.arm=b``, ``registered_model.alias=challenger``).
- **Nothing fails silently**: every scorer error and every failed write is counted per scorer and
  shown by ``flywheel monitor status``; the lag from the end of a trace to its assessments is kept
  (last 1,000) for the p50/p95 figures.

Assessments are named ``online/<scorer>`` with source CODE ``flywheel-monitor`` (LLM judges, when
configured, are called through the scorer context and rate-limited there).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flywheel.config import Settings
from flywheel.evaluation import ONLINE_SCORERS, EvalOutput, GoldenItem, Scorer, ScorerContext, make_scorer

__all__ = ["MonitorOptions", "OnlineMonitor", "partition_of", "trace_to_output"]

log = logging.getLogger("flywheel.monitor")
LOOKBACK_MS = 10 * 60 * 1000
ASSESSMENT_PREFIX = "online/"
MONITOR_SOURCE = "flywheel-monitor"
SPEC_KEY = "flywheel.scorer"  # assessment metadata: the scorer version that wrote it
STATUS_TAG = "flywheel.monitor"


@dataclass
class MonitorOptions:
    sample_rate: float = 1.0
    filters: dict[str, str] = field(default_factory=dict)
    scorers: list[str] = field(default_factory=lambda: list(ONLINE_SCORERS))
    exclude_simulated: bool = False
    settle_s: float = 2.0  # a trace younger than this may still be arriving: wait
    batch: int = 200
    replica: int = 0  # this replica's share of the traces: those whose id hashes to `replica`
    replicas: int = 1  # … modulo `replicas` (each replica its own cursor; none scores another's)
    attempts: int = 3  # a trace a scorer failed on is tried this many times before it is given up


def partition_of(trace_id: str, replicas: int) -> int:
    """Which of ``replicas`` monitors scores this trace (a hash of the id, independent of sampling)."""
    if replicas <= 1:
        return 0
    return int(hashlib.sha256(b"replica:" + trace_id.encode()).hexdigest()[:8], 16) % replicas


def sampled(trace_id: str, rate: float) -> bool:
    if rate >= 1.0:
        return True
    h = int(hashlib.sha256(trace_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < rate


def trace_to_output(trace: Any) -> tuple[str, EvalOutput]:
    """(question, EvalOutput) from an agent trace: the root span's inputs and outputs, the retrieved
    excerpts of its doc_search spans, its duration."""
    spans = list(trace.data.spans or [])
    root = next((s for s in spans if s.parent_id is None), spans[0] if spans else None)
    inputs = (root.inputs if root else None) or {}
    outputs = (root.outputs if root else None) or {}
    question = inputs.get("question", "") if isinstance(inputs, dict) else str(inputs)
    if not isinstance(outputs, dict):
        outputs = {"answer": str(outputs)}
    contexts: list[str] = []
    tools: list[str] = []
    for s in spans:
        if s.name in ("doc_search", "open_url", "web_search"):
            tools.append(s.name)
        if s.name == "doc_search" and isinstance(s.outputs, list):
            contexts += [h.get("page_content", "") for h in s.outputs if isinstance(h, dict)]
    out = EvalOutput(
        answer=str(outputs.get("answer", "")),
        sources=list(outputs.get("sources") or []),
        tools_called=tools,
        refused=bool(outputs.get("refused")),
        abstained=bool(outputs.get("abstained")),
        latency_ms=float(trace.info.execution_duration or 0),
        trace_id=trace.info.trace_id,
        question=question,
        contexts=contexts,
    )
    return question, out


def cached_embed(
    embed: Callable[[list[str]], list[list[float]]], size: int = 20_000
) -> Callable[[list[str]], list[list[float]]]:
    """``embed`` with an LRU cache per text: production questions hit the same pages, so the same
    excerpt windows come back trace after trace (MiniLM costs ~7 ms per window on 2 cores)."""
    from collections import OrderedDict

    cache: OrderedDict[str, list[float]] = OrderedDict()

    def fn(texts: list[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if t not in cache))
        if missing:
            for text, vec in zip(missing, embed(missing), strict=True):
                cache[text] = list(vec)
                if len(cache) > size:
                    cache.popitem(last=False)
        out = []
        for t in texts:
            cache.move_to_end(t)
            out.append(cache[t])
        return out

    return fn


class OnlineMonitor:
    def __init__(
        self,
        settings: Settings,
        opts: MonitorOptions,
        context: ScorerContext,
        experiment: str | None = None,
        log_assessment: Callable[[str, str, float, str, dict[str, str]], None] | None = None,
    ) -> None:

        from flywheel.tracking import client, use

        use(settings)
        self.client = client(settings)
        exp = self.client.get_experiment_by_name(experiment or settings.experiment)
        if exp is None:
            from flywheel.errors import InputError

            raise InputError("monitor_no_experiment", name=experiment or settings.experiment)
        self.experiment_id = exp.experiment_id
        if context.embed is not None:
            context = ScorerContext(embed=cached_embed(context.embed), judge=context.judge)
        self.opts, self.context = opts, context
        from flywheel.evaluation import scorer_spec
        from flywheel.monitoring._calibrate import calibrated_scorers

        # a scorer calibrated by `monitor calibrate` is a new version (its spec differs)
        self.scorers: list[Scorer] = calibrated_scorers(settings, opts.scorers)
        versions = sorted(
            scorer_spec(s) for s in self.scorers if scorer_spec(s) != scorer_spec(make_scorer(s.name))
        )
        # one cursor per selection: a filtered monitor must not mark the traces it skips as done
        # for an unfiltered one; a new scorer version scores the traces again, under its own cursor
        selection = json.dumps(
            [
                sorted(opts.filters.items()),
                opts.exclude_simulated,
                opts.sample_rate,
                *([versions] if versions else []),
            ]
        )
        default = json.dumps([[], False, 1.0])
        suffix = "" if selection == default else "-" + hashlib.sha256(selection.encode()).hexdigest()[:8]
        self.selection = suffix.lstrip("-") or "all"
        self.part = f"r{opts.replica}of{opts.replicas}" if opts.replicas > 1 else ""
        if not 0 <= opts.replica < max(1, opts.replicas):
            from flywheel.errors import InputError

            raise InputError(
                "option_value",
                option="--replica",
                value=f"{opts.replica}/{opts.replicas}",
                expected="I/N with 0 <= I < N",
            )
        part = f"-{self.part}" if self.part else ""
        self.path = settings.data_path / "monitor" / f"{self.experiment_id}{suffix}{part}.json"
        self.specs = {s.name: scorer_spec(s) for s in self.scorers}
        self.state = self._load()
        self._log = log_assessment or self._log_feedback
        self.settings = settings
        self._langfuse: list[Any] = []  # scores for Langfuse, sent once per poll
        self._last_published: tuple[dict[str, Any] | None, float] = (None, 0.0)

    # -- state
    def _load(self) -> dict[str, Any]:
        fresh: dict[str, Any] = {
            "cursor_ms": 0,
            "done": {},
            "counters": {"seen": 0, "sampled_out": 0, "filtered_out": 0, "scored": 0, "given_up": 0},
            "attempts": {},  # trace id -> polls on which a scorer failed (retried until `attempts`)
            "failures": {},
            "lags_s": [],
            "means": {},
        }
        try:
            return {**fresh, **json.loads(self.path.read_text(encoding="utf-8"))}
        except (OSError, ValueError):
            return fresh

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state), encoding="utf-8")
        tmp.replace(self.path)

    def _fail(self, scorer: str, exc: BaseException) -> None:
        self.state["failures"][scorer] = self.state["failures"].get(scorer, 0) + 1
        log.warning("online scorer %s failed: %s", scorer, str(exc)[:200])

    # -- work
    @staticmethod
    def _log_feedback(
        trace_id: str, name: str, value: float, rationale: str, metadata: dict[str, str]
    ) -> None:
        from flywheel.tracking import log_feedback

        log_feedback(trace_id, name, value, source_id=MONITOR_SOURCE, rationale=rationale, metadata=metadata)

    def _already(self, trace: Any) -> set[str]:
        """Scorers whose current version already scored this trace (a replica killed between the
        write and its cursor save rescoring nothing on restart)."""
        done = set()
        for a in getattr(trace.info, "assessments", None) or []:
            source = getattr(getattr(a, "source", None), "source_id", None)
            name = str(getattr(a, "name", ""))
            if source != MONITOR_SOURCE or not name.startswith(ASSESSMENT_PREFIX):
                continue
            scorer = name[len(ASSESSMENT_PREFIX) :]
            if (getattr(a, "metadata", None) or {}).get(SPEC_KEY) == self.specs.get(scorer):
                done.add(scorer)
        return done

    def _wanted(self, info: Any) -> bool:
        tags = info.tags or {}
        if self.opts.exclude_simulated and tags.get("client.simulated") == "true":
            return False
        return all(tags.get(k) == v for k, v in self.opts.filters.items())

    def score_trace(self, trace: Any) -> tuple[dict[str, float | None], int]:
        """Score one trace with every scorer not already recorded for it; returns the values and
        how many scorers failed (raised or could not be written)."""
        question, out = trace_to_output(trace)
        item = GoldenItem.model_validate({"input": {"question": question or "(no question recorded)"}})
        values: dict[str, float | None] = {}
        failed = 0
        already = self._already(trace)
        for scorer in self.scorers:
            if scorer.name in already:
                continue
            try:
                score = scorer(item, out, self.context)
            except Exception as exc:  # counted and shown by `monitor status`, never silent
                self._fail(scorer.name, exc)
                failed += 1
                continue
            values[scorer.name] = score.value
            if score.value is None:
                continue
            if self.settings.langfuse_scores and out.trace_id:
                from flywheel.evaluation import LangfuseScore

                self._langfuse.append(
                    LangfuseScore(
                        out.trace_id, ASSESSMENT_PREFIX + scorer.name, float(score.value), score.rationale
                    )
                )
            try:
                self._log(
                    out.trace_id or "",
                    ASSESSMENT_PREFIX + scorer.name,
                    float(score.value),
                    score.rationale,
                    {SPEC_KEY: self.specs[scorer.name]},
                )
            except Exception as exc:
                self._fail(f"{scorer.name} (write)", exc)
                failed += 1
        return values, failed

    def _candidates(self) -> list[Any]:
        """This replica's traces not yet handled, oldest first, at most ``batch``. Pages through the
        look-back window: one page of handled or other replicas' traces must not hide newer ones."""
        since = max(0, self.state["cursor_ms"] - LOOKBACK_MS)
        # tag filters go to the server: a selection that matches a few traces of a long history
        # must not page through all of it (a fresh selection starts at the beginning of time)
        where = [f"trace.timestamp_ms >= {since}"]
        for key, value in self.opts.filters.items():
            safe = str(value).replace("'", "\\'")
            where.append(f"tags.`{key}` = '{safe}'")
        found: list[Any] = []
        token = None
        while True:
            page = self.client.search_traces(
                locations=[self.experiment_id],
                filter_string=" AND ".join(where),
                order_by=["timestamp_ms ASC"],
                max_results=self.opts.batch,
                page_token=token,
                include_spans=False,
            )
            found += [
                t.info
                for t in page
                if t.info.trace_id not in self.state["done"]
                and partition_of(t.info.trace_id, self.opts.replicas) == self.opts.replica
            ]
            token = page.token
            if len(found) >= self.opts.batch or not token:
                return found[: self.opts.batch]

    def poll_once(self) -> int:
        """Score the traces that arrived since the cursor; returns how many were scored.

        A trace a scorer failed on (the judge timed out, the write was refused) is not marked done:
        the next poll tries again, up to ``attempts`` times, then it is counted as ``given_up``."""
        state = self.state
        now_ms = time.time() * 1000
        scored = 0
        for info in self._candidates():
            tid = info.trace_id
            end_ms = info.request_time + (info.execution_duration or 0)
            if str(getattr(info.state, "value", info.state)) == "IN_PROGRESS" or (
                now_ms - end_ms < self.opts.settle_s * 1000
            ):
                continue  # still arriving: next poll
            # filters and sampling need only the info the search returned: the full trace (spans,
            # assessments) is fetched for the traces that are scored, not for those passed over
            trace = None
            if self._wanted(info) and sampled(tid, self.opts.sample_rate):
                from flywheel.tracking import get_trace

                trace = get_trace(self.settings, tid)  # None: deleted since the search
            if not self._wanted(info):
                state["counters"]["filtered_out"] += 1
            elif not sampled(tid, self.opts.sample_rate):
                state["counters"]["sampled_out"] += 1
            elif trace is not None:
                values, failed = self.score_trace(trace)
                if failed:
                    tries = state["attempts"][tid] = state["attempts"].get(tid, 0) + 1
                    if tries < self.opts.attempts:
                        self._save()
                        continue  # not done: the next poll scores what is missing
                    state["counters"]["given_up"] = state["counters"].get("given_up", 0) + 1
                state["attempts"].pop(tid, None)
                state["counters"]["scored"] += 1
                scored += 1
                state["lags_s"] = [*state["lags_s"][-999:], round(time.time() - end_ms / 1000, 3)]
                for name, v in values.items():
                    if v is not None:
                        n, mean = state["means"].get(name, [0, 0.0])
                        state["means"][name] = [n + 1, mean + (v - mean) / (n + 1)]
            state["done"][tid] = info.request_time
            state["counters"]["seen"] += 1
            state["cursor_ms"] = max(state["cursor_ms"], info.request_time)
            self._save()  # a kill now loses nothing: this trace is done, the next is not begun
        cutoff = state["cursor_ms"] - LOOKBACK_MS
        state["done"] = {k: v for k, v in state["done"].items() if v >= cutoff}
        self._save()
        self._publish()
        if self._langfuse:
            batch, self._langfuse = self._langfuse, []
            try:
                from flywheel.evaluation import push_scores

                push_scores(self.settings, batch)
            except Exception as exc:  # counted like a scorer's write failure, never fatal
                self._fail("langfuse (write)", exc)
        return scored

    def run(
        self,
        poll_s: float = 2.0,
        until: float | None = None,
        max_traces: int | None = None,
        on_poll: Callable[[int], None] = lambda n: None,
    ) -> None:
        """Poll until ``until`` (a monotonic time) or ``max_traces`` scored; Ctrl+C stops cleanly."""
        total = 0
        while True:
            n = self.poll_once()
            total += n
            on_poll(n)
            if max_traces is not None and total >= max_traces:
                return
            if until is not None and time.monotonic() >= until:
                return
            time.sleep(poll_s)

    def _publish(self) -> None:
        """This replica's counters as an experiment tag, so `monitor status` can add up replicas
        that run on other machines (each with its own cursor on its own volume)."""
        s = self.status()
        record = {
            k: s.get(k, 0)
            for k in (
                "cursor",
                "seen",
                "scored",
                "given_up",
                "sampled_out",
                "filtered_out",
                "lag_p50_s",
                "lag_p95_s",
            )
        }
        record.update(
            replica=self.opts.replica,
            replicas=self.opts.replicas,
            failures=sum(s["failures"].values()),
            means={k: [v[0], round(v[1], 4)] for k, v in self.state["means"].items()},
        )
        # an idle replica writes once a minute (its "last poll"), not on every poll
        if record == self._last_published[0] and time.time() - self._last_published[1] < 60:
            return
        self._last_published = (dict(record), time.time())
        record["updated"] = round(time.time(), 1)
        key = f"{STATUS_TAG}.{self.selection}.{self.part or 'r0of1'}"
        try:
            self.client.set_experiment_tag(self.experiment_id, key, json.dumps(record)[:4900])
        except Exception as exc:  # counted, never fatal: the local status still has everything
            self._fail("status (write)", exc)

    def replica_statuses(self) -> list[dict[str, Any]]:
        """The published status of every replica of this selection (the newest replica count)."""
        exp = self.client.get_experiment(self.experiment_id)
        prefix = f"{STATUS_TAG}.{self.selection}."
        found = []
        for key, value in (exp.tags or {}).items():
            if key.startswith(prefix):
                try:
                    found.append(json.loads(value))
                except ValueError:
                    continue
        if not found:
            return []
        current = max(found, key=lambda r: r.get("updated", 0)).get("replicas", 1)
        return sorted((r for r in found if r.get("replicas") == current), key=lambda r: r["replica"])

    def status(self) -> dict[str, Any]:
        lags = sorted(self.state["lags_s"])

        def pct(q: float) -> float | None:
            return lags[min(len(lags) - 1, round(q / 100 * (len(lags) - 1)))] if lags else None

        return {
            "experiment_id": self.experiment_id,
            "cursor": self.state["cursor_ms"],
            **self.state["counters"],
            "failures": self.state["failures"],
            "lag_p50_s": pct(50),
            "lag_p95_s": pct(95),
            "means": {k: round(v[1], 4) for k, v in self.state["means"].items()},
        }
