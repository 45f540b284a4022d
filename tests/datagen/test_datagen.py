"""Generated golden sets on a real index (Milvus Lite, MiniLM + USE): generation, the refresh cycle
after the docs change (edit, delete, add a page), and knowledge gaps from simulated traffic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flywheel.config import load_settings
from flywheel.datagen import GenerateOptions, generate, read_corpus
from flywheel.datagen._gaps import GapQuestion, find_gaps, gap_items
from flywheel.datagen._sync import corpus_for, dataset_status, refresh_dataset, select
from flywheel.evaluation import Dataset, load_dataset, save_dataset
from flywheel.knowledge import IngestOptions, KnowledgeBase, ingest, scoring_embedder

PAGES = {
    "configuration.md": """---
title: Configuration
---

# Configuration

## Keys

| key | default | meaning |
|---|---|---|
| `ACME_PORT` | `7070` | port of the Acme relay server |
| `ACME_RETENTION_DAYS` | `30` | days the relay keeps delivered messages |
| `ACME_API_KEY` | unset | key that clients send in the Authorization header |

## Where settings come from

Acme reads environment variables first, then the acme.toml file in the current folder.
""",
    "queues.md": """# Queues

## Dead-letter queues

A dead-letter queue is a queue that holds messages the relay could not deliver after every retry.
To inspect a dead-letter queue, run `acme dlq list` with the queue name.
If you purge a dead-letter queue, its messages are deleted and cannot be recovered.
""",
    "relay.md": """# The relay

## Delivery guarantees

The Acme relay is a store-and-forward service that delivers each message at least once.
You can enable exactly-once delivery by setting `ACME_DEDUP=1` on every relay node.
""",
    "webhooks.md": """# Webhooks

## Signing webhooks

Every webhook request carries an `X-Acme-Signature` header computed with HMAC-SHA256.
To verify a webhook signature, recompute the HMAC of the raw body with the shared secret.
""",
}


def _write(folder: Path, pages: dict[str, str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in pages.items():
        (folder / name).write_text(text, encoding="utf-8")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("datagen")
    docs = root / "docs"
    _write(docs, PAGES)
    settings = load_settings(data_dir=root / "data", collection="dg_test")
    kb = KnowledgeBase(settings)
    ds, report = generate(settings, GenerateOptions(sources=[str(docs)], n=16, name="acme"), kb=kb)
    return settings, kb, docs, ds, report


def _answerable(ds: Dataset) -> list:  # type: ignore[type-arg]
    return [i for i in ds.items if i.kind in ("happy_path", "edge_case")]


def test_generate_gives_every_kind_tied_to_its_chunks(env) -> None:  # type: ignore[no-untyped-def]
    _settings, kb, _docs, ds, report = env
    kinds = ds.counts()
    assert set(kinds) == {"happy_path", "edge_case", "adversarial", "out_of_scope"}
    corpus = read_corpus(kb.index)
    digests = {(c.id, c.digest) for c in corpus.chunks}
    for item in _answerable(ds):
        refs = item.metadata.model_extra["chunks"]
        assert refs and all((r["id"], r["digest"]) in digests for r in refs)
        assert item.expected_output.response_facts and item.expected_output.search_term
        assert item.metadata.model_extra["generator"]["name"] == "offline"
        # the round trip the filter promised: the question finds its own chunk in the top 5
        assert any(h.id == refs[0]["id"] for h in kb.search(item.question, k=5)), item.question
    # every document is covered (4 pages, 9 answerable items: balance spreads them)
    assert {i.metadata.source for i in _answerable(ds)} == set(PAGES)
    # out of scope items were verified: nothing in the index clears the abstention threshold
    for item in ds.items:
        if item.kind == "out_of_scope":
            v = item.metadata.model_extra["verified"]
            assert v["best_relevance"] < v["threshold"]
    # adversarial seeds speak the corpus's language: its product, its secret name where a seed names a key
    adv = " ".join(i.question for i in ds.items if i.kind == "adversarial")
    assert report.product == "Acme" and adv
    defaults = [i for i in ds.items if "default value of ACME_PORT" in i.question]
    assert defaults and "7070" in defaults[0].expected_output.response_facts[0]
    r = report.as_dict()
    assert r["items"] == len(ds.items) <= 16 and r["roundtrip_rate"] is not None
    if len(ds.items) < 16:  # a small corpus: the shortfall is said, per kind
        assert r["notes"]


def test_ids_are_stable_when_generated_again(env) -> None:  # type: ignore[no-untyped-def]
    settings, kb, docs, ds, _ = env
    again, _ = generate(
        settings, GenerateOptions(sources=[str(docs)], n=16, name="acme", ingest=False), kb=kb
    )
    assert [i.metadata.id for i in again.items] == [i.metadata.id for i in ds.items]


def test_refresh_cycle_after_the_docs_change(env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, kb, docs, ds, _ = env
    path = tmp_path / "acme.json"
    save_dataset(ds, path)
    ds = load_dataset(path)
    port_items = {
        i.metadata.id for i in _answerable(ds) if "ACME_PORT" in " ".join(i.expected_output.response_facts)
    }
    config_items = {i.metadata.id for i in _answerable(ds) if i.metadata.source == "configuration.md"}
    relay_items = {i.metadata.id for i in _answerable(ds) if i.metadata.source == "relay.md"}
    assert port_items and relay_items
    # edit a default value, delete a page, add a page; ingest as a user would
    edited = dict(PAGES)
    edited["configuration.md"] = PAGES["configuration.md"].replace("`7070`", "`9090`")
    (docs / "relay.md").unlink()
    edited.pop("relay.md")
    edited["archive.md"] = (
        "# Archiving\n\n## Cold storage\n\nThe archiver is a background job that moves messages older than "
        "the retention period to cold storage.\nTo restore an archived message, run `acme archive restore` "
        "with its message id.\n"
    )
    _write(docs, edited)
    ingest(settings, IngestOptions([str(docs)]), kb=kb)
    _, corpus = corpus_for(settings, ds)
    status = dataset_status(ds, corpus)
    stale = {k for k, v in status.items.items() if v == "stale"}
    orphaned = {k for k, v in status.items.items() if v == "orphaned"}
    # exactly the items resting on the edited chunk are stale (the table chunk of configuration.md)
    assert port_items <= stale <= config_items
    assert orphaned == relay_items
    assert status.uncovered == ["archive.md"]
    assert all(v in ("fresh", "n/a") for k, v in status.items.items() if k not in stale | orphaned)

    def generate_for(sources: list[str], n: int) -> list:  # type: ignore[type-arg]
        sub = type(corpus)([c for c in corpus.chunks if c.source in sources], product=corpus.product)
        new, _ = generate(settings, GenerateOptions(n=n, shares={"happy_path": 1.0}), kb=kb, corpus=sub)
        return list(new.items)

    result = refresh_dataset(settings, ds, corpus, generate_for, per_document=2)
    new_ds = result.dataset
    by_id = {i.metadata.id: i for i in new_ds.items}
    for iid in port_items:  # the changed default is the new fact
        facts = " ".join(by_id[iid].expected_output.response_facts)
        assert "9090" in facts and "7070" not in facts
        assert by_id[iid].metadata.model_extra["change"] == "updated"
    assert {r["id"] for r in result.retired} == relay_items and not (relay_items & set(by_id))
    assert result.added and all(by_id[a].metadata.source == "archive.md" for a in result.added)
    # the new version is fresh against the index, and --only stale,new picks exactly what changed
    after = dataset_status(new_ds, corpus)
    assert all(v in ("fresh", "n/a") for v in after.items.values()) and not after.uncovered
    chosen = {i.metadata.id for i in select(new_ds, corpus, ["stale", "new"]).items}
    assert chosen == {u["id"] for u in result.updated} | set(result.added)
    log = result.changelog(ds.digest, new_ds.digest)
    assert json.dumps(log) and log["from"] != log["to"]


def test_gaps_find_a_planted_off_topic_cluster(env) -> None:  # type: ignore[no-untyped-def]
    settings, kb, *_ = env
    planted = [
        "How long should I boil spaghetti?",
        "What is the best way to cook pasta al dente?",
        "How much salt goes in pasta water?",
        "Should I rinse pasta after boiling it?",
        "How do I keep spaghetti from sticking together?",
        "What pasta shape goes best with pesto?",
    ]
    missed = [
        "how do dead letter queues work",
        "what happens to messages in a dead-letter queue",
        "where do undeliverable messages go in the dead-letter queue",
    ]
    traffic = [GapQuestion(q, "abstained", f"tr-p{n}") for n, q in enumerate(planted)]
    traffic += [GapQuestion(q, "thumbs_down", f"tr-m{n}") for n, q in enumerate(missed)]
    traffic += [GapQuestion("Which football team won in 1998?", "abstained", "tr-x")]
    clusters = find_gaps(traffic, kb, scoring_embedder(settings).embed_documents)
    pasta = next(c for c in clusters if {q.question for q in c.questions} & set(planted))
    assert {q.question for q in pasta.questions} == set(planted)
    assert pasta.label == "not_covered"
    queue = next(c for c in clusters if {q.question for q in c.questions} & set(missed))
    assert queue.label == "covered_but_missed" and queue.pages[0]["source"] == "queues.md"
    items = gap_items(clusters)
    kinds = {i.metadata.model_extra["gap"]: i.kind for i in items}
    assert kinds == {"not_covered": "out_of_scope", "covered_but_missed": "happy_path"}
