"""Knowledge gaps from production: the questions the agent could not serve, clustered and labelled.

A production question is a *gap question* when its trace says the agent abstained, when every
excerpt it retrieved scored below the abstention threshold plus a margin (``low_relevance``), or
when a user rated the answer "Not helpful" (a HUMAN ``user_feedback`` of False). Gap questions are
embedded (the scoring MiniLM) and clustered with scikit-learn's agglomerative clustering (cosine,
average linkage, a distance threshold: no number of clusters to guess). Each cluster is searched
again, member by member, as the agent searches:

- **not covered by the docs**: most members find nothing above the abstention threshold — work for
  the documentation writers; as dataset items they are ``out_of_scope`` (the agent should abstain
  until the docs cover them);
- **covered but missed**: the docs have relevant pages (listed) yet users were not served — a
  retrieval or answer problem; as items they are ``happy_path`` with ``metadata.source`` set to the
  nearest page ("should answer from page X") and no facts yet (a reviewer adds them).
"""

from __future__ import annotations

import html
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GapCluster", "GapQuestion", "find_gaps", "gap_items", "gap_questions", "write_gap_report"]

LOW_MARGIN = 0.05  # "low relevance": the best excerpt within this of the abstention threshold


@dataclass
class GapQuestion:
    question: str
    reason: str  # abstained | low_relevance | thumbs_down
    trace_id: str = ""


@dataclass
class GapCluster:
    label: str  # not_covered | covered_but_missed
    questions: list[GapQuestion]
    representatives: list[str]
    pages: list[dict[str, Any]] = field(default_factory=list)  # {"source", "title", "score"}
    covered_share: float = 0.0  # members that find a page above the threshold

    @property
    def size(self) -> int:
        return len(self.questions)

    @property
    def reasons(self) -> dict[str, int]:
        return dict(Counter(q.reason for q in self.questions))


def gap_questions(traces: list[Any], threshold: float | None = None, kb: Any = None) -> list[GapQuestion]:
    """The gap questions among agent traces (with spans): abstained, low relevance, thumbs-down.
    "Low" is measured against ``threshold``, else the knowledge base's calibrated threshold for the
    question (its embedder and language), else MiniLM's English one."""
    from flywheel.agent import detect_language
    from flywheel.knowledge import relevance_threshold
    from flywheel.monitoring import trace_to_output
    from flywheel.tracking import assessment_values

    def limit_for(question: str) -> float:
        if threshold is not None:
            return threshold
        if kb is not None:
            return float(kb.relevance_threshold(question, detect_language(question)))
        return relevance_threshold("all-MiniLM-L6-v2", "en")

    out: list[GapQuestion] = []
    for trace in traces:
        question, res = trace_to_output(trace)
        if not question or res.refused:
            continue
        human, _ = assessment_values(trace)
        scores = [
            float((h.get("metadata") or {}).get("score") or 0.0)
            for s in trace.data.spans or []
            if s.name == "doc_search" and isinstance(s.outputs, list)
            for h in s.outputs
            if isinstance(h, dict)
        ]
        reason = ""
        if human.get("user_feedback") is False:
            reason = "thumbs_down"
        elif res.abstained:
            reason = "abstained"
        elif scores and max(scores) < limit_for(question) + LOW_MARGIN:
            reason = "low_relevance"
        if reason:
            out.append(GapQuestion(question, reason, trace.info.trace_id))
    return out


def find_gaps(
    questions: list[GapQuestion], kb: Any, embed: Any, distance: float = 0.6, min_size: int = 2
) -> list[GapCluster]:
    """Cluster the gap questions and label each cluster (largest first); singletons are left out
    unless ``min_size`` is 1."""
    from sklearn.cluster import AgglomerativeClustering

    from flywheel.agent import detect_language

    members = list(questions)
    if len(members) < max(2, min_size):
        return []
    vecs = np.asarray(embed([q.question for q in members]), dtype=float)
    vecs /= np.where(
        np.linalg.norm(vecs, axis=1, keepdims=True) == 0, 1, np.linalg.norm(vecs, axis=1, keepdims=True)
    )
    labels = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=distance
    ).fit_predict(vecs)
    clusters: list[GapCluster] = []
    for label in sorted(set(labels), key=lambda lab: -int((labels == lab).sum())):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        if len(idx) < min_size:
            continue
        centre = vecs[idx].mean(axis=0)
        order = sorted(idx, key=lambda i: -float(vecs[i] @ centre))
        reps = list(dict.fromkeys(members[i].question for i in order))[:3]
        pages: dict[str, dict[str, Any]] = {}
        covered = 0
        for i in order[:8]:  # the members nearest the centre speak for the cluster
            q = members[i].question
            hits = kb.search(q, k=3)
            best = max((h.dense_score for h in hits), default=0.0)
            if getattr(hits, "relevance", None) is not None:
                best = max(best, float(hits.relevance))
            if best >= kb.relevance_threshold(q, detect_language(q)):
                covered += 1
            for h in hits:
                page = pages.setdefault(h.source, {"source": h.source, "title": h.title, "score": 0.0})
                page["score"] = max(page["score"], round(float(h.dense_score), 3))
        share = covered / min(8, len(order))
        clusters.append(
            GapCluster(
                label="covered_but_missed" if share > 0.5 else "not_covered",
                questions=[members[i] for i in order],
                representatives=reps,
                pages=sorted(pages.values(), key=lambda p: -p["score"])[:3],
                covered_share=round(share, 3),
            )
        )
    return clusters


def gap_items(clusters: list[GapCluster], per_cluster: int = 3) -> list[Any]:
    """Dataset items for the clusters: ``should abstain`` (not covered) or ``should answer from
    page X`` (covered but missed)."""
    import hashlib

    from flywheel.evaluation import GoldenItem

    items = []
    for c in clusters:
        for q in c.representatives[:per_cluster]:
            covered = c.label == "covered_but_missed"
            items.append(
                GoldenItem.model_validate(
                    {
                        "input": {"question": q},
                        "expected_output": {"trajectory": ["doc_search"]} if covered else {},
                        "metadata": {
                            "id": "gap-" + hashlib.sha1(q.encode()).hexdigest()[:10],
                            "kind": "happy_path" if covered else "out_of_scope",
                            "source": c.pages[0]["source"] if covered and c.pages else None,
                            "gap": c.label,
                            "source_trace": next((m.trace_id for m in c.questions if m.question == q), ""),
                        },
                    }
                )
            )
    return items


_LABEL = {"not_covered": "not covered by the docs", "covered_but_missed": "covered but missed"}


def write_gap_report(clusters: list[GapCluster], folder: Path, total: int) -> dict[str, Path]:
    """``gaps.md`` and ``gaps.html`` (the dashboard's style: one card per cluster)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Knowledge gaps",
        "",
        f"{total} gap questions (abstained, low relevance, thumbs-down) in {len(clusters)} clusters.",
        "",
    ]
    for n, c in enumerate(clusters, 1):
        reasons = ", ".join(f"{k} {v}" for k, v in c.reasons.items())
        lines += [f"## {n}. {_LABEL[c.label]} — {c.size} questions ({reasons})", ""]
        lines += [f"- {q}" for q in c.representatives]
        pages = "; ".join(f"{p['source']} ({p['score']:.2f})" for p in c.pages) or "none"
        lines += ["", f"Nearest pages: {pages}", ""]
    md = folder / "gaps.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    cards = []
    for n, c in enumerate(clusters, 1):
        colour = "#b54708" if c.label == "not_covered" else "#175cd3"
        qs = "".join(f"<li>{html.escape(q)}</li>" for q in c.representatives)
        pages = "".join(f"<li>{html.escape(p['source'])} · {p['score']:.2f}</li>" for p in c.pages)
        cards.append(
            f"<section><h2 style='color:{colour}'>{n}. {_LABEL[c.label]} · {c.size} questions</h2>"
            f"<p>{html.escape(', '.join(f'{k} {v}' for k, v in c.reasons.items()))}</p>"
            f"<h3>Representative questions</h3><ul>{qs}</ul><h3>Nearest pages</h3><ul>{pages}</ul></section>"
        )
    fragment = folder / "gaps.fragment.html"  # the section `flywheel monitor dashboard` shows
    fragment.write_text(
        f"<h2>Knowledge gaps</h2><p>{total} gap questions in {len(clusters)} clusters "
        "(flywheel monitor gaps).</p>" + "".join(cards),
        encoding="utf-8",
    )
    page = (
        "<!doctype html><meta charset=utf-8><title>flywheel · knowledge gaps</title>"
        "<style>body{font:14px system-ui;margin:2em;max-width:60em}section{border:1px solid #ddd;"
        "border-radius:8px;padding:0 1em;margin:1em 0}</style>"
        f"<h1>Knowledge gaps</h1><p>{total} gap questions in {len(clusters)} clusters.</p>" + "".join(cards)
    )
    out = folder / "gaps.html"
    out.write_text(page, encoding="utf-8")
    return {"markdown": md, "html": out}
