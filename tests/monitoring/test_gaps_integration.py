"""`flywheel monitor gaps` on real production traces: questions the served agent abstained on come
back from the tracking server, cluster, and are labelled not covered by the docs."""

from __future__ import annotations

import time

import pytest

from flywheel.config import Settings

pytestmark = pytest.mark.integration

PLANTED = [
    "How long should I boil spaghetti?",
    "What is the best way to cook pasta al dente?",
    "How much salt goes in pasta water?",
    "How do I keep spaghetti from sticking together?",
]


def test_gaps_cluster_real_abstained_traces(served_local: Settings) -> None:
    import mlflow
    from openai import OpenAI

    from flywheel.datagen._gaps import find_gaps, gap_questions
    from flywheel.knowledge import KnowledgeBase, scoring_embedder

    settings = served_local
    client = OpenAI(base_url=f"http://{settings.host}:{settings.agent_port}", api_key="none")
    sent = []
    for q in [*PLANTED, "Which port does the MLflow tracking server use by default?"]:
        reply = client.responses.create(model="docs-qa-agent", input=q)
        sent.append((reply.metadata or {}).get("trace_id"))
    mlflow.set_tracking_uri(settings.tracking_uri)
    exp = mlflow.get_experiment_by_name(settings.experiment)
    assert exp is not None
    deadline = time.monotonic() + 90
    found = []
    while time.monotonic() < deadline:  # traces reach the tracking server in batches
        traces = mlflow.search_traces(locations=[exp.experiment_id], max_results=500, return_type="list")
        found = [q for q in gap_questions(list(traces)) if q.trace_id in sent]
        if len(found) >= len(PLANTED):
            break
        time.sleep(2)
    assert {q.question for q in found} >= set(PLANTED), found
    assert all(q.reason == "abstained" for q in found if q.question in PLANTED)
    kb = KnowledgeBase(settings)
    clusters = find_gaps(found, kb, scoring_embedder(settings).embed_documents)
    pasta = next(c for c in clusters if {q.question for q in c.questions} & set(PLANTED))
    assert {q.question for q in pasta.questions} >= set(PLANTED) and pasta.label == "not_covered"
