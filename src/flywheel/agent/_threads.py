"""Conversation threads (the last turns of each conversation) and which thread a Responses API
``previous_response_id`` belongs to — in memory for one process, or in a shared store so that every
worker and replica of the agent server continues the same conversation.

- ``memory``: a bounded LRU in this process (the CLI, evaluations);
- ``sqlite`` (the agent server's default): ``data/conversations.db`` in WAL mode, shared by the
  workers of one machine (``flywheel serve --workers N``);
- ``postgresql://…``: shared by replicas on many machines (psycopg).

Bounded and expiring in every backend: at most ``max_threads`` threads, each dropped
``ttl_s`` after its last turn; a thread keeps only its last ``keep`` messages.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol

__all__ = ["ConversationStore", "MemoryStore", "SQLStore", "make_store"]

Turn = tuple[str, str]  # (role: "user" | "assistant", text)


class ConversationStore(Protocol):
    def history(self, thread_id: str) -> list[Turn]: ...

    def remember(self, thread_id: str, question: str, answer: str, keep: int) -> None: ...

    def link(self, response_id: str, thread_id: str) -> None: ...

    def thread_of(self, response_id: str) -> str | None: ...


class MemoryStore:
    def __init__(self, max_threads: int = 10_000, ttl_s: float = 7 * 86400) -> None:
        self.max_threads, self.ttl_s = max_threads, ttl_s
        self._threads: OrderedDict[str, tuple[float, list[Turn]]] = OrderedDict()
        self._responses: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def history(self, thread_id: str) -> list[Turn]:
        with self._lock:
            got = self._threads.get(thread_id)
            if got is None or time.time() - got[0] > self.ttl_s:
                return []
            return list(got[1])

    def remember(self, thread_id: str, question: str, answer: str, keep: int) -> None:
        with self._lock:
            _, turns = self._threads.pop(thread_id, (0.0, []))
            self._threads[thread_id] = (
                time.time(),
                [*turns, ("user", question), ("assistant", answer)][-keep:],
            )
            while len(self._threads) > self.max_threads:
                self._threads.popitem(last=False)

    def link(self, response_id: str, thread_id: str) -> None:
        with self._lock:
            self._responses[response_id] = thread_id
            while len(self._responses) > self.max_threads:
                self._responses.popitem(last=False)

    def thread_of(self, response_id: str) -> str | None:
        with self._lock:
            return self._responses.get(response_id)


_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS flywheel_threads (thread_id TEXT PRIMARY KEY, turns TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS flywheel_threads_updated ON flywheel_threads (updated)",
    "CREATE TABLE IF NOT EXISTS flywheel_responses (response_id TEXT PRIMARY KEY, thread_id TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS flywheel_responses_updated ON flywheel_responses (updated)",
]


class SQLStore:
    """SQLite or PostgreSQL through the DB-API; one connection per thread of this process."""

    PRUNE_EVERY = 200  # writes between pruning passes (expired threads, threads over the cap)

    def __init__(self, dsn: str, max_threads: int = 100_000, ttl_s: float = 7 * 86400) -> None:
        self.dsn, self.max_threads, self.ttl_s = dsn, max_threads, ttl_s
        self.postgres = dsn.startswith(("postgresql://", "postgres://"))
        self.mark = "%s" if self.postgres else "?"
        self._local = threading.local()
        self._writes = 0
        with self._tx() as cur:
            for stmt in _SCHEMA:
                cur.execute(stmt)

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.postgres:
                import psycopg

                conn = psycopg.connect(self.dsn)
            else:
                Path(self.dsn).parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.dsn, timeout=10, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _tx(self) -> Any:
        store = self

        class _Tx:
            def __enter__(self) -> Any:
                self.conn = store._conn()
                self.cur = self.conn.cursor()
                if not store.postgres:
                    self.cur.execute("BEGIN IMMEDIATE")
                return self.cur

            def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
                if kind is None:
                    self.conn.commit() if store.postgres else self.cur.execute("COMMIT")
                else:
                    self.conn.rollback() if store.postgres else self.cur.execute("ROLLBACK")
                self.cur.close()

        return _Tx()

    def _q(self, sql: str) -> str:
        return sql.replace("?", self.mark)

    def history(self, thread_id: str) -> list[Turn]:
        cur = self._conn().cursor()
        cur.execute(self._q("SELECT turns, updated FROM flywheel_threads WHERE thread_id = ?"), (thread_id,))
        row = cur.fetchone()
        cur.close()
        if self.postgres:
            self._conn().commit()
        if row is None or time.time() - float(row[1]) > self.ttl_s:
            return []
        return [(r, t) for r, t in json.loads(row[0])]

    def remember(self, thread_id: str, question: str, answer: str, keep: int) -> None:
        with self._tx() as cur:
            cur.execute(self._q("SELECT turns FROM flywheel_threads WHERE thread_id = ?"), (thread_id,))
            row = cur.fetchone()
            turns = [*(json.loads(row[0]) if row else []), ["user", question], ["assistant", answer]][-keep:]
            cur.execute(
                self._q(
                    "INSERT INTO flywheel_threads (thread_id, turns, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT (thread_id) DO UPDATE SET turns = excluded.turns, updated = excluded.updated"
                ),
                (thread_id, json.dumps(turns), time.time()),
            )
        self._maybe_prune()

    def link(self, response_id: str, thread_id: str) -> None:
        with self._tx() as cur:
            cur.execute(
                self._q(
                    "INSERT INTO flywheel_responses (response_id, thread_id, updated) VALUES (?, ?, ?) "
                    "ON CONFLICT (response_id) DO NOTHING"
                ),
                (response_id, thread_id, time.time()),
            )
        self._maybe_prune()

    def thread_of(self, response_id: str) -> str | None:
        cur = self._conn().cursor()
        cur.execute(
            self._q("SELECT thread_id, updated FROM flywheel_responses WHERE response_id = ?"), (response_id,)
        )
        row = cur.fetchone()
        cur.close()
        if self.postgres:
            self._conn().commit()
        if row is None or time.time() - float(row[1]) > self.ttl_s:
            return None
        return str(row[0])

    def _maybe_prune(self) -> None:
        self._writes += 1
        if self._writes % self.PRUNE_EVERY == 0:
            self.prune()

    def prune(self) -> None:
        """Drop expired threads and links, and the oldest beyond ``max_threads``."""
        cutoff = time.time() - self.ttl_s
        with self._tx() as cur:
            for table in ("flywheel_threads", "flywheel_responses"):
                cur.execute(self._q(f"DELETE FROM {table} WHERE updated < ?"), (cutoff,))
                key = "thread_id" if table == "flywheel_threads" else "response_id"
                cur.execute(
                    self._q(
                        f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} "
                        f"ORDER BY updated DESC LIMIT -1 OFFSET ?)"
                    )
                    if not self.postgres
                    else f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} ORDER BY updated DESC OFFSET %s)",
                    (self.max_threads,),
                )


def make_store(spec: str, data_path: Path, max_threads: int, ttl_s: float) -> ConversationStore:
    """``memory`` | ``sqlite`` (data/conversations.db) | ``sqlite:///path`` | ``postgresql://…``."""
    if spec == "memory":
        return MemoryStore(max_threads, ttl_s)
    if spec == "sqlite":
        return SQLStore(str(data_path / "conversations.db"), max_threads, ttl_s)
    if spec.startswith("sqlite:///"):
        return SQLStore(spec.removeprefix("sqlite:///"), max_threads, ttl_s)
    return SQLStore(spec, max_threads, ttl_s)
