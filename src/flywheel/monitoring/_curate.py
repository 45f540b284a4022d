"""Regressions from production, automatically: failing traces become items of a ``regressions`` set.

``flywheel monitor curate`` (or a schedule calling :func:`curate`) reads the production
experiment's traces since its cursor and keeps the **failures**, a trace with any of:

- an online score below its threshold (``online/<scorer>`` from ``flywheel monitor run``; 0.5 by
  default for the content scorers, latency not counted),
- a person's thumbs-down (``user_feedback`` False from the chat page or the API),
- a human correction (the expectation ``expected_response`` from the annotation queue).

A refusal counts only with a thumbs-down or a correction (an attack that was refused scores low
on relevance by design). Then:

1. **Scrub.** Questions, answers and corrections go through DataFog's regex engine (e-mail, phone,
   card, SSN and IP address become ``[EMAIL_1]`` …) and the configured secrets are masked, before
   anything is embedded, clustered or written. Names are not caught: that needs an NER model
   (DataFog's ``nlp`` extra with a spaCy model), which cannot be downloaded here.
2. **Cluster and de-duplicate.** The scrubbed questions are embedded (MiniLM and USE, the facts
   scorer's pair: a cosine is the mean of theirs), the similarity mixed with the IDF-weighted
   overlap of their key terms (:func:`question_similarity`: a product name two questions share
   counts, "how do I" does not), and grouped by scikit-learn's agglomerative clustering (average
   linkage, a distance threshold: rephrasings of one question join, distinct questions on one
   topic do not); one item per group — the member a person corrected, else the lowest-scored — and
   none whose question is already in the dataset (similarity ≥ ``1 - distance``, or the same
   source trace). Measured by ``bench/curation_dedup.py``: rephrasings a person would call one
   question are still often split (see its results); no distinct question was merged.
3. **Write** the items (``metadata.regression``, the source trace and the group's traces, the
   failing scores, ``corrected``; a correction becomes the expected answer's facts, an uncorrected
   failure expects no facts, since its own answer is what failed) with
   :func:`flywheel.monitoring._feedback.add_to_dataset`: a new version of the dataset file,
   registered in MLflow.

The cursor (``data/monitor/curate-<experiment>.json``) holds the newest trace time read and the
traces already written; each run reads from a day before it (a thumbs-down or an online score
arrives after its trace), skips what it wrote before, and forgets what is older than that day.
``--since`` overrides it.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flywheel.config import Settings, secret_values

__all__ = ["CurateOptions", "CurateReport", "Failure", "curate", "failure_of", "scrub"]

CONTENT_SCORERS = {
    "groundedness": 0.5,
    "judge_groundedness": 0.5,
    "answer_relevance": 0.5,
    "response_quality": 0.5,
    "safety": 0.5,
}
PII_TYPES = ["EMAIL", "PHONE", "SSN", "CREDIT_CARD", "IP_ADDRESS"]
LOOKBACK_MS = 24 * 3600 * 1000
PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")  # what scrub() leaves in place of personal data
NOT_PERSONAL = ["127.0.0.1", "0.0.0.0", "::1"]  # addresses the docs themselves are full of


@dataclass
class CurateOptions:
    thresholds: dict[str, float] = field(default_factory=lambda: dict(CONTENT_SCORERS))
    # 1 - similarity under which two questions are one regression; the similarity mixes the two
    # embedders' cosine with `lexical` × the shared rare terms (chosen on a train set of
    # rephrasings by bench/curation_dedup.py, reported there on questions it never saw)
    distance: float = 0.5
    lexical: float = 0.5
    # with an LLM judge (FLYWHEEL_JUDGE_BASE_URL): groups whose questions are this close but not
    # close enough to join are asked about ("the same question?"), at most `judge_pairs` pairs
    judge_band: float = 0.75
    judge_pairs: int = 200
    limit: int = 5000
    since_ms: int | None = None  # None: the cursor
    dry_run: bool = False


@dataclass
class Failure:
    trace_id: str
    question: str
    answer: str
    failing: dict[str, float]  # scorer → value below its threshold
    thumbs_down: bool
    correction: str | None
    refused: bool
    time_ms: int
    trace: Any = None

    @property
    def severity(self) -> float:
        """Lower is worse: a correction first, then a thumbs-down, then the lowest score."""
        return (
            (0 if self.correction else 1)
            + (0 if self.thumbs_down else 1)
            + min(self.failing.values(), default=1)
        )


@dataclass
class CurateReport:
    read: int
    failures: int
    groups: int
    added: list[str]  # item ids
    duplicates: int  # groups already in the dataset
    pii_found: dict[str, int]
    path: Path | None
    version: str | None
    items: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "failures": self.failures,
            "groups": self.groups,
            "added": self.added,
            "duplicates": self.duplicates,
            "pii_found": self.pii_found,
            "path": str(self.path) if self.path else None,
            "version": self.version,
        }


def scrub(text: str, secrets: list[str] | None = None, found: dict[str, int] | None = None) -> str:
    """Personal data out of ``text``: DataFog's regex engine (fast, offline, no model) for
    :data:`PII_TYPES`, then the configured secrets. ``found`` counts what was replaced, by type."""
    os.environ.setdefault("DATAFOG_NO_TELEMETRY", "1")  # opt-in already; say it twice
    import datafog

    from flywheel.config import redact

    if not text:
        return text
    result = datafog.redact(text, entity_types=PII_TYPES, engine="regex", allowlist=NOT_PERSONAL)
    if found is not None:
        for e in result.entities:
            found[e.type] = found.get(e.type, 0) + 1
    return redact(result.redacted_text, secrets or [])


def failure_of(trace: Any, thresholds: dict[str, float]) -> Failure | None:
    """The trace as a failure, or None when nothing says it failed."""
    from flywheel.monitoring._feedback import correction_of
    from flywheel.monitoring._online import ASSESSMENT_PREFIX, trace_to_output
    from flywheel.tracking import assessment_values

    human, auto = assessment_values(
        trace
    )  # by name, the latest wins (a later passing score clears a failure)
    thumbs = human.get("user_feedback")
    thumbs_down = thumbs is False or (thumbs == 0 and thumbs is not None)
    failing = {
        name.removeprefix(ASSESSMENT_PREFIX): float(v)
        for name, v in auto.items()
        if name.startswith(ASSESSMENT_PREFIX)
        and name.removeprefix(ASSESSMENT_PREFIX) in thresholds
        and isinstance(v, int | float)
        and not isinstance(v, bool)
        and v < thresholds[name.removeprefix(ASSESSMENT_PREFIX)]
    }
    correction = correction_of(trace)
    question, out = trace_to_output(trace)
    if not question.strip():
        return None
    if out.refused and not (thumbs_down or correction):
        return None
    if not (failing or thumbs_down or correction):
        return None
    return Failure(
        trace_id=trace.info.trace_id,
        question=question,
        answer=out.answer,
        failing=failing,
        thumbs_down=thumbs_down,
        correction=correction,
        refused=out.refused,
        time_ms=int(trace.info.request_time or 0),
        trace=trace,
    )


def question_similarity(texts: list[str], vectors: Any, lexical: float = 0.0) -> Any:
    """Pairwise similarity of questions: the cosine of their (normalized) vectors, mixed with
    ``lexical`` × the IDF-weighted overlap of their key terms (IDF over ``texts``: a word most
    questions share weighs little, a product name two questions share weighs a lot)."""
    import numpy as np

    from flywheel.knowledge import key_terms

    v = np.asarray(vectors, dtype=float)
    v = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)
    sims = np.clip(v @ v.T, -1.0, 1.0)
    if lexical <= 0 or len(texts) < 2:
        return sims
    terms = [key_terms(PLACEHOLDER.sub(" ", t)) for t in texts]  # "[EMAIL_1]" is not a topic
    vocab = {t: k for k, t in enumerate(sorted(set().union(*terms)))}
    present = np.zeros((len(texts), len(vocab)))
    for i, ts in enumerate(terms):
        present[i, [vocab[t] for t in ts]] = 1.0
    idf = np.log((len(texts) + 1) / (present.sum(axis=0) + 0.5))
    # IDF-weighted Jaccard, every pair at once: shared weight / (weight of i + weight of j - shared)
    shared = (present * idf) @ present.T
    weight = present @ idf
    union = weight[:, None] + weight[None, :] - shared
    lex = np.divide(shared, union, out=np.zeros_like(shared), where=union > 0)
    np.fill_diagonal(lex, 1.0)
    return (1 - lexical) * sims + lexical * lex


SAME_QUESTION = (
    "Do these two questions ask for the same thing (one is a rephrasing of the other)? "
    "Answer yes or no.\n1. {a}\n2. {b}\nAnswer:"
)


def merge_by_judge(
    groups: list[list[int]], questions: list[str], sims: Any, judge: Any, band: float, max_pairs: int
) -> list[list[int]]:
    """Groups whose closest members are within ``band`` (1 - similarity) but were not joined by the
    clustering are put to the judge, closest first, at most ``max_pairs``; a "yes" joins them.
    Embeddings alone place many rephrasings further apart than distinct questions on one topic
    (``bench/curation_dedup.py``); a capable LLM can tell them apart. A judge error keeps the
    groups apart."""
    import numpy as np

    parent = list(range(len(groups)))

    def root(g: int) -> int:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    sims = np.asarray(sims)
    candidates = []
    for x, y in itertools.combinations(range(len(groups)), 2):
        block = sims[np.ix_(groups[x], groups[y])]
        i, j = np.unravel_index(int(np.argmax(block)), block.shape)
        if 1 - float(block[i, j]) <= band:
            candidates.append((-float(block[i, j]), x, y, groups[x][i], groups[y][j]))
    for _, x, y, a, b in sorted(candidates)[:max_pairs]:
        if root(x) == root(y):
            continue
        try:
            reply = str(judge(SAME_QUESTION.format(a=questions[a], b=questions[b])))
        except Exception:  # the judge is away: keep them apart, never lose an item
            continue
        if reply.strip().lower().startswith("yes"):
            parent[root(y)] = root(x)
    merged: dict[int, list[int]] = {}
    for g, members in enumerate(groups):
        merged.setdefault(root(g), []).extend(members)
    return list(merged.values())


def _groups_from_similarity(sims: Any, distance: float) -> list[list[int]]:
    """Agglomerative clustering (average linkage) of a similarity matrix, cut at ``distance``."""
    import numpy as np

    n = len(sims)
    if n < 2:
        return [[i] for i in range(n)]
    from sklearn.cluster import AgglomerativeClustering

    labels = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=distance
    ).fit_predict(np.clip(1.0 - np.asarray(sims), 0.0, 2.0))
    out: dict[int, list[int]] = {}
    for i, label in enumerate(labels):
        out.setdefault(int(label), []).append(i)
    return list(out.values())


def _item(f: Failure, members: list[Failure], question: str, answer: str, correction: str | None) -> Any:
    from flywheel.evaluation import GoldenItem, answer_sentences
    from flywheel.knowledge import strip_citations

    expected: dict[str, Any] = {}
    if correction:
        facts = [strip_citations(s).strip() for s in answer_sentences(correction)]
        expected["response_facts"] = [x for x in facts if x][:8]
    return GoldenItem.model_validate(
        {
            "input": {"question": question},
            "expected_output": expected,
            "metadata": {
                "id": f"reg-{f.trace_id.removeprefix('tr-')[:12]}",
                "kind": "happy_path",
                "regression": True,
                "source_trace": f.trace_id,
                "traces": [m.trace_id for m in members],
                "failing": f.failing,
                "thumbs_down": any(m.thumbs_down for m in members),
                "corrected": correction is not None,
                "failed_answer": answer[:2000],
                "expected_response": correction,
            },
        }
    )


def _cursor_path(settings: Settings, experiment_id: str) -> Path:
    return settings.data_path / "monitor" / f"curate-{experiment_id}.json"


def curate(
    settings: Settings,
    experiment_id: str,
    dataset_path: Path,
    options: CurateOptions | None = None,
    embed: Any = None,
    on_event: Any = lambda msg: None,
    judge: Any = None,
) -> CurateReport:
    """Failing production traces since the cursor → new items of the dataset at ``dataset_path``.
    ``judge`` (prompt → reply; default: the configured LLM judge, if any) settles the pairs of
    groups in the judge band."""
    import numpy as np

    from flywheel.evaluation import load_dataset
    from flywheel.monitoring._feedback import add_to_dataset
    from flywheel.tracking import search_traces

    opts = options or CurateOptions()
    cursor_file = _cursor_path(settings, experiment_id)
    cursor = json.loads(cursor_file.read_text()) if cursor_file.is_file() else {}
    done: dict[str, int] = dict(cursor.get("done", {}))
    since = (
        opts.since_ms if opts.since_ms is not None else max(0, int(cursor.get("newest_ms", 0)) - LOOKBACK_MS)
    )
    traces = search_traces(settings, experiment_id, f"trace.timestamp_ms >= {since}", opts.limit)
    on_event(f"read {len(traces)} trace(s)")
    failures = [
        f for t in traces if t.info.trace_id not in done and (f := failure_of(t, opts.thresholds)) is not None
    ]
    secrets = secret_values(settings)
    found: dict[str, int] = {}
    clean = [
        (
            scrub(f.question, secrets, found),
            scrub(f.answer, secrets, found),
            scrub(f.correction, secrets, found) if f.correction else None,
        )
        for f in failures
    ]
    existing = load_dataset(dataset_path) if dataset_path.exists() else None
    report = CurateReport(len(traces), len(failures), 0, [], 0, found, None, None)
    if failures:
        if embed is None:
            from flywheel.knowledge import facts_embedder

            embed = facts_embedder(settings).embed_documents  # MiniLM and USE: the mean of their cosines
        have_traces: set[str] = set()
        have_q: list[str] = []
        if existing and existing.items:
            for i in existing.items:
                have_traces |= {
                    getattr(i.metadata, "source_trace", None) or "",
                    *(getattr(i.metadata, "traces", None) or []),
                }
            have_q = [i.question for i in existing.items]
        questions = [q for q, _, _ in clean]
        # one similarity over the failures and the set's questions: the terms' weights see both
        sims = question_similarity(
            questions + have_q, np.asarray(embed(questions + have_q), dtype=float), opts.lexical
        )
        n = len(questions)
        groups = _groups_from_similarity(sims[:n, :n], opts.distance)
        if judge is None and settings.judge_base_url:
            from flywheel.llm import make_judge

            judge = make_judge(settings)
        if judge is not None and len(groups) > 1:
            on_event(f"asking the judge about close groups of {len(groups)}")
            groups = merge_by_judge(groups, questions, sims[:n, :n], judge, opts.judge_band, opts.judge_pairs)
        report.groups = len(groups)
        items = []
        for members in sorted(groups, key=lambda g: min(failures[i].time_ms for i in g)):
            best = min(members, key=lambda i: (failures[i].severity, failures[i].time_ms))
            f = failures[best]
            near = bool(have_q) and float(sims[best, n:].max()) >= 1 - opts.distance
            if near or any(failures[i].trace_id in have_traces for i in members):
                report.duplicates += 1
                continue
            correction = next((clean[i][2] for i in members if clean[i][2]), None)
            items.append(_item(f, [failures[i] for i in members], clean[best][0], clean[best][1], correction))
        report.items = items
        if items and not opts.dry_run:
            added = add_to_dataset(settings, dataset_path, items, name=dataset_path.stem)
            report.added = [i.metadata.id or "" for i in items if i.metadata.source_trace in added.added]
            report.path, report.version = added.path, added.version
    if not opts.dry_run:
        newest = max([int(cursor.get("newest_ms", 0)), *(int(t.info.request_time or 0) for t in traces)])
        for item in report.items:  # written, or found in the set: never looked at again
            for tid in getattr(item.metadata, "traces", None) or []:
                done[tid] = newest
        for f in failures:
            if any(f.trace_id in (getattr(i.metadata, "traces", None) or []) for i in report.items):
                continue
            done.setdefault(f.trace_id, newest)  # a duplicate group: in the set already
        done = {t: ms for t, ms in done.items() if ms >= newest - LOOKBACK_MS}
        cursor_file.parent.mkdir(parents=True, exist_ok=True)
        cursor_file.write_text(json.dumps({"newest_ms": newest, "done": done, "updated": time.time()}))
    return report
