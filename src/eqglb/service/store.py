"""Durable state of the dispatch service: an embedded SQLite database in WAL mode.

One row per accepted slot holds the request (canonical JSON and its SHA-256), the response
sent back (byte for byte, for idempotent replays) and the whole service state after the
slot (policy state, sticky signals, cumulative costs, weights), so a restart reads one row.
Rows of several slots are written in one transaction ("group commit") when requests arrive
together; every response is sent only after its transaction has committed.

Durability: ``synchronous=FULL`` (default) makes SQLite fsync the write-ahead log at every
commit, so an acknowledged slot survives a power cut or an OS crash, not only the death of
the process. ``synchronous=NORMAL`` skips that fsync: in WAL mode a committed transaction
is still in the OS page cache when the process is killed (SIGKILL loses nothing), but the
last transactions may be lost if the machine itself goes down. Group commit is what keeps
FULL fast under load: one fsync covers every slot of a batch.

Threads: :meth:`Store.commit` may run in one thread while :meth:`Store.lookup` runs in
another (two connections); the ``read_*`` methods open their own connections.

A lock file (``<db>.lock``, ``flock``) keeps a second service from writing the same
database; the OS releases it when the process dies, even by SIGKILL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eqglb.scenario import ScenarioError

__all__ = ["SCHEMA_VERSION", "SlotRow", "Store", "StoreError"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS slots (
    slot            INTEGER PRIMARY KEY,
    time            TEXT    NOT NULL,
    time_ns         INTEGER NOT NULL UNIQUE,
    idempotency_key TEXT    NOT NULL UNIQUE,
    request_hash    TEXT    NOT NULL,
    request         TEXT    NOT NULL,
    response        BLOB    NOT NULL,
    state           TEXT    NOT NULL,
    policy_state    TEXT    NOT NULL,
    committed_at    REAL    NOT NULL
);
"""


class StoreError(ScenarioError):
    """The database cannot be used (locked by another service, wrong schema, other config)."""


@dataclass(frozen=True)
class SlotRow:
    """One accepted slot as written to the database.

    Attributes
    ----------
    slot : int
        Index of the slot (0 = first accepted slot).
    time : str
        Start of the slot, ISO 8601 UTC.
    time_ns : int
        Start of the slot [ns since the Unix epoch, UTC].
    idempotency_key, request_hash : str
    request : str
        Canonical JSON of the request (idempotency key left out).
    response : bytes
        Response body sent to the client (JSON).
    state : str
        Service state after the slot, without the policy's (JSON).
    policy_state : str
        The policy's state after the slot (JSON).
    """

    slot: int
    time: str
    time_ns: int
    idempotency_key: str
    request_hash: str
    request: str
    response: bytes
    state: str
    policy_state: str


class Store:
    """SQLite store of accepted slots (see the module docstring).

    Parameters
    ----------
    path : str or Path
        Database file; created with its parent folders if missing.
    synchronous : {"full", "normal"}
        SQLite ``synchronous`` setting (durability against power loss vs. process death).

    Raises
    ------
    StoreError
        If another process holds the database, the file is not an eqglb service database
        or WAL mode cannot be enabled (e.g. a network file system).
    """

    def __init__(self, path: str | Path, synchronous: str = "full") -> None:
        sync = str(synchronous).lower()
        if sync not in ("full", "normal"):
            raise StoreError(f"synchronous = {synchronous!r}; use 'full' (fsync every commit, "
                             "survives power loss) or 'normal' (survives process death)")
        self.path = Path(path)
        self.synchronous = sync
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"database {self.path}: cannot create its folder ({exc})") from exc
        self._lock_fd = self._lock()
        try:
            self._con = self._connect()
            mode = self._con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"database {self.path}: SQLite could not enable WAL mode (got "
                                 f"{mode!r}); put the database on a local file system")
            self._con.execute(f"PRAGMA synchronous={sync.upper()}")
            self._con.executescript(_SCHEMA)
            # lookups run on their own connection: they never wait for a commit's fsync
            self._read = self._connect()
            version = self.get_meta("schema_version")
            if version is None:
                self.set_meta({"schema_version": SCHEMA_VERSION})
            elif version != SCHEMA_VERSION:
                raise StoreError(f"database {self.path}: schema_version {version!r}; this "
                                 f"eqglb writes version {SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"database {self.path}: not a usable SQLite database ({exc}); "
                             "give a new path with --db") from exc
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _lock(self) -> int:
        lock_path = Path(str(self.path) + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"database {self.path} is in use by another eqglb service (lock "
                             f"{lock_path}); stop it or give another --db") from None
        return fd

    def _connect(self, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True,
                                  isolation_level=None, check_same_thread=False, timeout=10.0)
        else:
            con = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                  timeout=10.0)
        return con

    def close(self) -> None:
        """Close the connection and release the lock (idempotent)."""
        for attr in ("_read", "_con"):
            con = getattr(self, attr, None)
            if con is not None:
                with contextlib.suppress(sqlite3.Error):
                    con.close()
                setattr(self, attr, None)
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            self._lock_fd = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str) -> Any:
        """Value stored under ``key`` (decoded JSON), or None."""
        row = self._con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, values: dict[str, Any]) -> None:
        """Write several meta values in one transaction."""
        with self._transaction():
            self._con.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True)) for k, v in values.items()])

    # ------------------------------------------------------------------ slots
    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        con = self._con
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def commit(self, rows: Iterable[SlotRow]) -> None:
        """Write accepted slots in one transaction; returns once it is committed."""
        now = time.time()
        data = [(r.slot, r.time, r.time_ns, r.idempotency_key, r.request_hash, r.request,
                 r.response, r.state, r.policy_state, now) for r in rows]
        if not data:
            return
        with self._transaction() as con:
            con.executemany(
                "INSERT INTO slots (slot, time, time_ns, idempotency_key, request_hash, "
                "request, response, state, policy_state, committed_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                data)

    def lookup(self, key: str) -> tuple[str, bytes, int] | None:
        """(request_hash, response, slot) stored under an idempotency key, or None (sees
        committed slots only; safe while another thread commits)."""
        row = self._read.execute(
            "SELECT request_hash, response, slot FROM slots WHERE idempotency_key = ?",
            (key,)).fetchone()
        return None if row is None else (row[0], bytes(row[1]), int(row[2]))

    def latest_state(self) -> tuple[int, str, str] | None:
        """(slot, service state JSON, policy state JSON) of the last accepted slot, or None
        for an empty database."""
        row = self._con.execute(
            "SELECT slot, state, policy_state FROM slots ORDER BY slot DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), row[1], row[2])

    # ------------------------------------------------------------------ reads (any thread)
    def read_slot(self, slot: int) -> dict[str, Any] | None:
        """Stored request and response of one slot (fresh read-only connection)."""
        con = self._connect(readonly=True)
        try:
            row = con.execute(
                "SELECT slot, time, idempotency_key, request, response, committed_at FROM slots "
                "WHERE slot = ?", (int(slot),)).fetchone()
        finally:
            con.close()
        if row is None:
            return None
        return {"slot": row[0], "time": row[1], "idempotency_key": row[2],
                "request": json.loads(row[3]), "response": json.loads(bytes(row[4])),
                "committed_at": row[5]}

    def list_slots(self, after: int = -1, limit: int = 100) -> list[dict[str, Any]]:
        """(slot, time, idempotency_key) of slots with index > ``after``, in order."""
        con = self._connect(readonly=True)
        try:
            rows = con.execute(
                "SELECT slot, time, idempotency_key FROM slots WHERE slot > ? ORDER BY slot "
                "LIMIT ?", (int(after), int(limit))).fetchall()
        finally:
            con.close()
        return [{"slot": r[0], "time": r[1], "idempotency_key": r[2]} for r in rows]

    def count(self) -> int:
        """Number of accepted slots."""
        return int(self._con.execute("SELECT COUNT(*) FROM slots").fetchone()[0])
