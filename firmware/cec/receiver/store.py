"""Where the receiver keeps documents: one row per document hash, the first receipt with it.

Exactly once is the database's job, not the workers': the insert is
``INSERT … ON CONFLICT (hash) DO UPDATE SET deliveries = deliveries + 1 … RETURNING receipt``, one
atomic statement. The first delivery inserts its row and gets its own receipt back; every later one,
even one racing it from another worker, waits on the row lock, counts itself as a delivery and gets
the *first* receipt back (the update never touches ``receipt``). A delivery is told it created the row
when the receipt id returned is the one it proposed.

Embedded SQLite (WAL, one writer at a time) in the store folder by default; PostgreSQL through
psycopg 3 (an async connection pool per worker) for several workers.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

SQLITE_FILE = "receiver.sqlite"
POOL_SIZE = 8  # connections per worker: a worker's requests wait on the database, not on Python
SQLITE_BUSY_MS = 10_000  # a second process on the same file (receiver list) waits, it does not fail

COLUMNS = ("hash", "station", "kind", "device", "key_id", "body", "signature", "receipt_id", "received_at",
           "receipt", "deliveries", "last_delivery_at")
LISTED = ("station", "kind", "hash", "received_at", "device", "receipt_id", "deliveries", "last_delivery_at",
          "bytes")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
  hash TEXT PRIMARY KEY,
  station TEXT NOT NULL,
  kind TEXT NOT NULL,
  device TEXT NOT NULL,
  key_id TEXT NOT NULL,
  body {blob} NOT NULL,
  signature {blob} NOT NULL,
  receipt_id TEXT NOT NULL UNIQUE,
  received_at TEXT NOT NULL,
  receipt TEXT NOT NULL,
  deliveries INTEGER NOT NULL DEFAULT 1,
  last_delivery_at TEXT NOT NULL
)"""
_INDEX = "CREATE INDEX IF NOT EXISTS documents_station ON documents (station, kind)"
_PUT = """
INSERT INTO documents (hash, station, kind, device, key_id, body, signature, receipt_id, received_at, receipt,
                       deliveries, last_delivery_at)
VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, 1, {p})
ON CONFLICT (hash) DO UPDATE SET deliveries = documents.deliveries + 1, last_delivery_at = excluded.last_delivery_at
RETURNING receipt_id, receipt"""
_LIST = ("SELECT station, kind, hash, received_at, device, receipt_id, deliveries, last_delivery_at, "
         "length(body) FROM documents ORDER BY station, received_at, hash")


@dataclass(frozen=True)
class Delivery:
    """One accepted delivery of a document, with the receipt the receiver proposes for it."""
    hash: str
    station: str
    kind: str
    device: str
    key_id: str
    body: bytes
    signature: bytes
    receipt_id: str
    received_at: str  # ISO 8601 UTC
    receipt: str  # canonical JSON of the signed receipt

    def row(self) -> tuple[Any, ...]:
        return (self.hash, self.station, self.kind, self.device, self.key_id, self.body, self.signature,
                self.receipt_id, self.received_at, self.receipt, self.received_at)


class DocumentStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def put(self, delivery: Delivery) -> tuple[str, bool]:
        """Store once; (the first receipt's JSON, whether this delivery created the row)."""
        ...


def open_store(store_dir: Path, database: str | None) -> DocumentStore:
    return PostgresStore(database) if database else SqliteStore(store_dir / SQLITE_FILE)


def list_documents(store_dir: Path | None, database: str | None) -> list[dict[str, Any]]:
    """Every stored document (without its body), ordered by station and arrival."""
    if database:
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            _ensure_postgres_schema(conn)
            rows: Sequence[Sequence[Any]] = conn.execute(_LIST).fetchall()
    else:
        assert store_dir is not None
        path = store_dir / SQLITE_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: no receiver store here; give the --store folder the receiver ran "
                                    "with, or --database")
        conn = _sqlite_connect(path)
        try:
            rows = conn.execute(_LIST).fetchall()
        finally:
            conn.close()
    return [dict(zip(LISTED, row, strict=True)) for row in rows]


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one writer at a time; the connection is shared by the worker threads

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = _sqlite_connect(self.path)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def put(self, delivery: Delivery) -> tuple[str, bool]:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(self._put, delivery)

    def _put(self, delivery: Delivery) -> tuple[str, bool]:
        assert self._conn is not None, "open() the store first"
        with self._lock:
            receipt_id, receipt = self._conn.execute(_PUT.format(p="?"), delivery.row()).fetchone()
        return receipt, receipt_id == delivery.receipt_id


class PostgresStore:
    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        self.url = url
        self.pool_size = pool_size
        self._pool: Any = None

    async def open(self) -> None:
        import psycopg
        from psycopg_pool import AsyncConnectionPool

        with psycopg.connect(self.url, autocommit=True) as conn:
            _ensure_postgres_schema(conn)
        self._pool = AsyncConnectionPool(self.url, min_size=1, max_size=self.pool_size, open=False,
                                         kwargs={"autocommit": True})
        await self._pool.open(wait=True, timeout=30)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def put(self, delivery: Delivery) -> tuple[str, bool]:
        assert self._pool is not None, "open() the store first"
        async with self._pool.connection() as conn:
            cur = await conn.execute(_PUT.format(p="%s"), delivery.row())
            receipt_id, receipt = await cur.fetchone()
        return receipt, receipt_id == delivery.receipt_id


def _ensure_postgres_schema(conn: Any) -> None:
    # Several workers start at once: CREATE TABLE IF NOT EXISTS is not safe against itself in
    # PostgreSQL (a unique violation on pg_type), so the first takes a lock and the others wait.
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(724100)")
        conn.execute(_SCHEMA.format(blob="BYTEA"))
        conn.execute(_INDEX)


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=SQLITE_BUSY_MS / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # a receipt is given only for a row that survives a power cut
    conn.execute(_SCHEMA.format(blob="BLOB"))
    conn.execute(_INDEX)
    return conn
