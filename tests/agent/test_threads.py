"""Conversation stores: bounded, expiring, and shared between processes (SQLite) so that a second
worker or replica continues the same conversation."""

from __future__ import annotations

import concurrent.futures as cf
import time
from pathlib import Path

import pytest

from flywheel.agent._threads import MemoryStore, SQLStore, make_store


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_history_keeps_the_last_turns_and_expires(kind: str, tmp_path: Path) -> None:
    store = make_store(kind, tmp_path, max_threads=100, ttl_s=3600)
    for i in range(4):
        store.remember("t1", f"q{i}", f"a{i}", keep=4)
    assert store.history("t1") == [("user", "q2"), ("assistant", "a2"), ("user", "q3"), ("assistant", "a3")]
    assert store.history("nope") == []
    store.link("resp_1", "t1")
    assert store.thread_of("resp_1") == "t1" and store.thread_of("resp_x") is None
    expired = make_store(kind, tmp_path, max_threads=100, ttl_s=0.05)
    expired.remember("t2", "q", "a", keep=2)
    time.sleep(0.1)
    assert expired.history("t2") == []


def test_two_processes_share_one_sqlite_store(tmp_path: Path) -> None:
    worker_a = SQLStore(str(tmp_path / "c.db"))
    worker_b = SQLStore(str(tmp_path / "c.db"))  # another worker: its own connection
    worker_a.remember("t", "What port?", "5010.", keep=6)
    worker_a.link("resp_a", "t")
    assert worker_b.thread_of("resp_a") == "t"
    assert worker_b.history("t") == [("user", "What port?"), ("assistant", "5010.")]


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    store = SQLStore(str(tmp_path / "c.db"))
    with cf.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.remember(f"t{i % 4}", f"q{i}", f"a{i}", keep=1000), range(200)))
    assert sum(len(store.history(f"t{k}")) for k in range(4)) == 400


def test_the_store_is_bounded(tmp_path: Path) -> None:
    mem = MemoryStore(max_threads=10)
    for i in range(50):
        mem.remember(f"t{i}", "q", "a", keep=2)
    assert mem.history("t0") == [] and mem.history("t49")
    sql = SQLStore(str(tmp_path / "c.db"), max_threads=100)
    for i in range(300):
        sql.remember(f"t{i}", "q", "a", keep=2)
    sql.prune()
    assert sql.history("t0") == [] and sql.history("t299")
    conn = sql._conn()
    assert conn.execute("SELECT count(*) FROM flywheel_threads").fetchone()[0] == 100
