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

Locking: the service holds an exclusive ``flock`` on the database file itself (an open
descriptor of the file, not of its path), so a second service on the same file refuses to
start whatever name it uses (a hard link, a symbolic link, another path); the OS
releases the lock when the process dies, even by SIGKILL. The file must be writable: a
read-only database is refused at start, and :attr:`Store.writable` says whether the last
write succeeded (``/healthz`` reports it).

Integrity: every row carries a SHA-256 checksum of its fields; ``meta.last_slot`` is
updated in the transaction of every commit. At start the store runs ``PRAGMA quick_check``,
checks the write-ahead log for a damaged frame followed by committed frames (SQLite would
drop them silently), verifies every row's checksum and that the slots are exactly
``0..last_slot``; a mismatch refuses the start with a message naming what is wrong and how
to recover. Replays and reads verify the row they return.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sqlite3
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

__all__ = [
    "SCHEMA_VERSION",
    "SlotRow",
    "Store",
    "StoreCorruptError",
    "StoreError",
    "row_checksum",
    "wal_damage",
]

SCHEMA_VERSION = 2

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
    committed_at    REAL    NOT NULL,
    checksum        TEXT    NOT NULL
);
"""

#: Columns a row's checksum covers, in order (text columns read as bytes: a damaged byte
#: that is not UTF-8 is reported as damage, not as a decoding error).
_SUMMED = (
    "slot",
    "time",
    "time_ns",
    "idempotency_key",
    "request_hash",
    "request",
    "response",
    "state",
    "policy_state",
)
_SELECT_SUMMED = ", ".join(
    f"CAST({c} AS BLOB)" if c not in ("slot", "time_ns") else c for c in _SUMMED
)
#: (device, inode) of the database files this process holds.
_HELD: set[tuple[int, int]] = set()
_RECOVER = "restore the database (and its -wal file) from a backup, or start with a new --db"


from eqglb.errors import StoreCorruptError, StoreError  # noqa: E402  (one errors module)


def row_checksum(*fields: Any) -> str:
    """SHA-256 (hex) of a row's fields in the order of ``_SUMMED`` (length-prefixed)."""
    h = hashlib.sha256()
    for f in fields:
        b = f if isinstance(f, bytes) else str(f).encode()
        h.update(len(b).to_bytes(8, "big"))
        h.update(b)
    return h.hexdigest()


# --------------------------------------------------------------------------- the WAL
_WAL_MAGIC = (0x377F0682, 0x377F0683)
_M32 = np.uint64(0xFFFFFFFF)
_POWERS: dict[int, np.ndarray] = {}


def _powers(n: int) -> np.ndarray:
    """M^(n-1-i) for i = 0..n-1 (mod 2^32), M = [[1, 1], [1, 2]]: the linear map of one
    step of SQLite's WAL checksum (s0 += x0 + s1; s1 += x1 + s0)."""
    if n not in _POWERS:
        out = np.empty((n, 2, 2), dtype=np.uint64)
        m = np.eye(2, dtype=np.uint64)
        step = np.array([[1, 1], [1, 2]], dtype=np.uint64)
        for k in range(n):
            out[n - 1 - k] = m
            m = (step @ m) & _M32
        _POWERS[n] = out
    return _POWERS[n]


def _wal_sum(data: bytes, s: tuple[int, int], big: bool) -> tuple[int, int]:
    """SQLite's WAL checksum of ``data`` (a multiple of 8 bytes) continued from ``s``."""
    x = np.frombuffer(data, dtype=">u4" if big else "<u4").astype(np.uint64)
    a, b = x[0::2], x[1::2]
    n = a.size
    pw = _powers(n)
    u0, u1 = a, (a + b) & _M32
    # S_n = M^n S_0 + sum_i M^(n-1-i) u_i (uint64 products wrap mod 2^64: exact mod 2^32)
    full = (np.array([[1, 1], [1, 2]], dtype=np.uint64) @ pw[0]) & _M32  # M^n
    with np.errstate(over="ignore"):  # numpy scalars warn where arrays wrap silently
        s0 = (
            full[0, 0] * np.uint64(s[0])
            + full[0, 1] * np.uint64(s[1])
            + np.sum(pw[:, 0, 0] * u0 + pw[:, 0, 1] * u1, dtype=np.uint64)
        ) & _M32
        s1 = (
            full[1, 0] * np.uint64(s[0])
            + full[1, 1] * np.uint64(s[1])
            + np.sum(pw[:, 1, 0] * u0 + pw[:, 1, 1] * u1, dtype=np.uint64)
        ) & _M32
    return int(s0), int(s1)


def wal_damage(wal: str | Path) -> str | None:
    """What is wrong with a SQLite write-ahead log, or None when SQLite would lose nothing.

    SQLite replays the frames of its WAL up to the first one whose salt or checksum does
    not match and silently ignores the rest. After a kill that is right (the tail of a
    transaction that never committed); it loses acknowledged data when a damaged frame
    is followed by frames that still carry the log's salts, chain from the damaged
    frame's own recorded checksum and end in a commit frame. This function finds that
    case (and a damaged header in front of frames). A damaged commit frame that ends the
    log cannot be told from a torn, unacknowledged write and is not reported.
    """
    try:
        data = Path(wal).read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < 32:
        return None
    magic, version, page, _, salt1, salt2, c1, c2 = struct.unpack(">8I", data[:32])
    big = bool(magic & 1)
    if (
        magic not in _WAL_MAGIC
        or version != 3007000
        or page < 512
        or page > 65536
        or page & (page - 1)
        or _wal_sum(data[:24], (0, 0), big) != (c1, c2)
    ):
        if len(data) > 32 and any(data[32:]):
            return "its header is damaged while frames follow it"
        return None
    size = 24 + page
    n = (len(data) - 32) // size
    s = (c1, c2)

    def frame(k: int) -> tuple[int, int, int, int, int, bytes]:
        off = 32 + k * size
        pg, commit, f1, f2, k1, k2 = struct.unpack(">6I", data[off : off + 24])
        return commit, f1, f2, k1, k2, data[off : off + 8] + data[off + 24 : off + size]

    k = 0
    while k < n:
        commit, f1, f2, k1, k2, summed = frame(k)
        if (f1, f2) != (salt1, salt2):
            break
        s = _wal_sum(summed, s, big)
        if s != (k1, k2):
            break
        k += 1
    if k >= n:
        return None
    _, _, _, k1, k2, _ = frame(k)
    s = (k1, k2)  # the writer's running checksum after frame k
    for j in range(k + 1, n):
        commit, f1, f2, j1, j2, summed = frame(j)
        if (f1, f2) != (salt1, salt2):
            return None
        s = _wal_sum(summed, s, big)
        if s != (j1, j2):
            return None
        if commit:
            return (
                f"frame {k + 1} of its {n} frames is damaged, and {j - k} intact frames "
                "after it end in a commit: SQLite would silently drop those committed "
                "transactions"
            )
    return None


# --------------------------------------------------------------------------- rows
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

    def checksum(self) -> str:
        return row_checksum(*(getattr(self, c) for c in _SUMMED))


class Store:
    """SQLite store of accepted slots (see the module docstring).

    Parameters
    ----------
    path : str or Path
        Database file; created with its parent folders if missing. Any characters are
        safe (``#``, ``?``, ``%``: the file is opened by a quoted ``file:`` URI).
    synchronous : {"full", "normal"}
        SQLite ``synchronous`` setting (durability against power loss vs. process death).

    Raises
    ------
    StoreError
        If another process holds the database, the file is read-only or not an eqglb
        service database, WAL mode cannot be enabled (e.g. a network file system), or
        the store is damaged or does not match its own history
        (:class:`StoreCorruptError`).
    """

    def __init__(self, path: str | Path, synchronous: str = "full") -> None:
        sync = str(synchronous).lower()
        if sync not in ("full", "normal"):
            raise StoreError(
                f"synchronous = {synchronous!r}; use 'full' (fsync every commit, "
                "survives power loss) or 'normal' (survives process death)"
            )
        self.path = Path(path)
        self.synchronous = sync
        #: False after a write failed (until one succeeds): /healthz reports it.
        self.writable = False
        #: Why the last write failed, or None.
        self.write_error: str | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"database {self.path}: cannot create its folder ({exc})") from exc
        self._lock_fd = self._lock()
        # SQLite names the -wal file after the resolved path: so do we
        self._real = Path(os.path.realpath(self.path))
        try:
            damage = wal_damage(str(self._real) + "-wal")
            if damage is not None:
                raise StoreCorruptError(
                    f"database {self.path}: its write-ahead log {self._real}-wal is damaged: "
                    f"{damage}; {_RECOVER} (to keep only the slots before the damage, and "
                    "lose the later ones, run: sqlite3 <db> 'PRAGMA wal_checkpoint(TRUNCATE)')"
                )
            self._con = self._connect()
            self._check_tables()
            mode = self._con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"database {self.path}: SQLite could not enable WAL mode (got "
                    f"{mode!r}); put the database on a local file system"
                )
            self._con.execute(f"PRAGMA synchronous={sync.upper()}")
            check = [r[0] for r in self._con.execute("PRAGMA quick_check").fetchall()]
            if check != ["ok"]:
                raise StoreCorruptError(
                    f"database {self.path} is damaged (PRAGMA quick_check: "
                    f"{'; '.join(map(str, check[:3]))}); {_RECOVER}"
                )
            self._con.executescript(_SCHEMA)
            # lookups run on their own connection: they never wait for a commit's fsync
            self._read = self._connect()
            version = self.get_meta("schema_version")
            if version is None:
                self.set_meta({"schema_version": SCHEMA_VERSION, "last_slot": -1})
            elif version == 1:
                self._migrate_v1()
            elif version != SCHEMA_VERSION:
                raise StoreError(
                    f"database {self.path}: schema_version {version!r}; this "
                    f"eqglb writes version {SCHEMA_VERSION}"
                )
            self.verify()
            self._last_slot = int(self.get_meta("last_slot"))
            self._probe_write()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(
                f"database {self.path}: not a usable SQLite database ({exc}); "
                "give a new path with --db"
            ) from exc
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ setup
    def _lock(self) -> int:
        """Open the database file itself and hold an exclusive flock on it."""
        with contextlib.suppress(OSError):
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) in _HELD:
                # held by this process: opening and closing another descriptor of the file
                # would drop SQLite's own POSIX locks on it
                raise StoreError(
                    f"database {self.path} is in use by another eqglb service "
                    "in this process; close it or give another --db"
                )
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except IsADirectoryError:
            raise StoreError(
                f"--db {self.path} is a folder; give the path of a database file"
            ) from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise StoreError(
                    f"database {self.path} is read-only ({exc.strerror}): the service must "
                    "write every accepted slot; make the file and its folder writable, or "
                    "give another --db"
                ) from None
            raise StoreError(f"database {self.path}: cannot open it ({exc})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"database {self.path} is in use by another eqglb service (it "
                "holds a lock on the file, whatever path or link it was opened "
                "by); stop it or give another --db"
            ) from None
        st = os.fstat(fd)
        self._inode = (st.st_dev, st.st_ino)
        _HELD.add(self._inode)
        return fd

    def _uri(self, mode: str) -> str:
        return f"file:{quote(str(self._real), safe='/')}?mode={mode}"

    def _connect(self, readonly: bool = False) -> sqlite3.Connection:
        return sqlite3.connect(
            self._uri("ro" if readonly else "rw"),
            uri=True,
            isolation_level=None,
            check_same_thread=False,
            timeout=10.0,
        )

    def _check_tables(self) -> None:
        """An eqglb database has both tables or neither (a new file)."""
        names = {
            r[0] for r in self._con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        if ("meta" in names) != ("slots" in names):
            missing = "slots" if "meta" in names else "meta"
            raise StoreCorruptError(
                f"database {self.path} has lost its table {missing!r} (the other one is "
                f"there): it does not match its own history; {_RECOVER}"
            )

    def _migrate_v1(self) -> None:
        """Schema 1 (no checksums): add them, trusting the rows as they are."""
        with self._transaction() as con:
            con.execute("ALTER TABLE slots ADD COLUMN checksum TEXT NOT NULL DEFAULT ''")
            rows = con.execute(f"SELECT {_SELECT_SUMMED} FROM slots").fetchall()
            con.executemany(
                "UPDATE slots SET checksum = ? WHERE slot = ?",
                [(row_checksum(*r), r[0]) for r in rows],
            )
            last = con.execute("SELECT MAX(slot) FROM slots").fetchone()[0]
            con.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", json.dumps(SCHEMA_VERSION)),
                    ("last_slot", json.dumps(-1 if last is None else int(last))),
                ],
            )

    def verify(self) -> None:
        """Check every row against its checksum and the slots against ``meta.last_slot``.

        Raises
        ------
        StoreCorruptError
            Naming the first mismatch and how to recover.
        """
        last = self.get_meta("last_slot")
        n, lo, hi = self._con.execute("SELECT COUNT(*), MIN(slot), MAX(slot) FROM slots").fetchone()
        if not isinstance(last, int) or isinstance(last, bool):
            raise StoreCorruptError(
                f"database {self.path}: meta last_slot is {last!r}, not a slot index; {_RECOVER}"
            )
        if n != last + 1 or (n and (lo != 0 or hi != last)):
            raise StoreCorruptError(
                f"database {self.path} does not match its own history: it records slots 0.."
                f"{last} as committed but holds {n} slot(s)"
                + (f" ({lo}..{hi})" if n else "")
                + f"; {_RECOVER}"
            )
        cur = self._con.execute(f"SELECT {_SELECT_SUMMED}, checksum FROM slots ORDER BY slot")
        for row in cur:
            if row_checksum(*row[:-1]) != row[-1]:
                raise StoreCorruptError(self._damaged(int(row[0])))

    def _damaged(self, slot: int) -> str:
        return (
            f"database {self.path}: slot {slot} does not match its checksum (its stored "
            f"request, response or state was changed on disk); {_RECOVER}"
        )

    def _probe_write(self) -> None:
        """A real write at start: a read-only file, folder or file system is refused now,
        not at the first slot."""
        try:
            self.set_meta({"opened_at": time.time()})
        except sqlite3.OperationalError as exc:
            raise StoreError(
                f"database {self.path} cannot be written ({exc}): the service "
                "must write every accepted slot; make the file and its folder "
                "writable, or give another --db"
            ) from None
        self.writable, self.write_error = True, None

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
            _HELD.discard(self._inode)

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
                [(k, json.dumps(v, sort_keys=True)) for k, v in values.items()],
            )

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
        rows = list(rows)
        data = [
            (
                r.slot,
                r.time,
                r.time_ns,
                r.idempotency_key,
                r.request_hash,
                r.request,
                r.response,
                r.state,
                r.policy_state,
                now,
                r.checksum(),
            )
            for r in rows
        ]
        if not data:
            return
        first = self._last_slot + 1
        if [r.slot for r in rows] != list(range(first, first + len(rows))):
            # e.g. a batch decided on top of a batch whose commit failed: never leave a gap
            raise StoreError(
                f"rows of slots {[r.slot for r in rows][:5]} do not follow the "
                f"last committed slot {self._last_slot}; not written"
            )
        try:
            with self._transaction() as con:
                con.executemany(
                    "INSERT INTO slots (slot, time, time_ns, idempotency_key, request_hash, "
                    "request, response, state, policy_state, committed_at, checksum) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    data,
                )
                con.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('last_slot', ?)",
                    (json.dumps(rows[-1].slot),),
                )
        except Exception as exc:
            self.writable, self.write_error = False, f"{type(exc).__name__}: {exc}"
            raise
        self._last_slot = rows[-1].slot
        self.writable, self.write_error = True, None

    def lookup(self, key: str) -> tuple[str, bytes, int] | None:
        """(request_hash, response, slot) stored under an idempotency key, or None (sees
        committed slots only; safe while another thread commits).

        Raises
        ------
        StoreCorruptError
            If the row does not match its checksum (a damaged response is never replayed).
        """
        row = self._read.execute(
            f"SELECT {_SELECT_SUMMED}, checksum FROM slots WHERE idempotency_key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        if row_checksum(*row[:-1]) != row[-1]:
            raise StoreCorruptError(self._damaged(int(row[0])))
        return bytes(row[4]).decode(), bytes(row[6]), int(row[0])

    def latest_state(self) -> tuple[int, str, str] | None:
        """(slot, service state JSON, policy state JSON) of the last accepted slot (checked
        against its checksum), or None for an empty database."""
        row = self._con.execute(
            f"SELECT {_SELECT_SUMMED}, checksum FROM slots ORDER BY slot DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        if row_checksum(*row[:-1]) != row[-1]:
            raise StoreCorruptError(self._damaged(int(row[0])))
        return int(row[0]), bytes(row[7]).decode(), bytes(row[8]).decode()

    def signal_history(self) -> Iterator[tuple[int, int, str, dict[str, Any]]]:
        """(slot, start time [ns], idempotency key, resolved signals) of every accepted
        slot, in order (each row checked against its checksum): the history a restarted
        policy reads."""
        rows = self._con.execute(
            f"SELECT {_SELECT_SUMMED}, checksum FROM slots ORDER BY slot"
        ).fetchall()
        for row in rows:
            if row_checksum(*row[:-1]) != row[-1]:
                raise StoreCorruptError(self._damaged(int(row[0])))
            state = json.loads(bytes(row[7]))
            yield int(row[0]), int(row[2]), bytes(row[3]).decode(), state["signals"]

    # ------------------------------------------------------------------ reads (any thread)
    def read_slot(self, slot: int) -> dict[str, Any] | None:
        """Stored request and response of one slot (fresh read-only connection), checked
        against the row's checksum (:class:`StoreCorruptError` if it does not match)."""
        con = self._connect(readonly=True)
        try:
            row = con.execute(
                f"SELECT {_SELECT_SUMMED}, checksum, committed_at FROM slots WHERE slot = ?",
                (int(slot),),
            ).fetchone()
        finally:
            con.close()
        if row is None:
            return None
        if row_checksum(*row[:9]) != row[9]:
            raise StoreCorruptError(self._damaged(int(row[0])))
        return {
            "slot": row[0],
            "time": bytes(row[1]).decode(),
            "idempotency_key": bytes(row[3]).decode(),
            "request": json.loads(bytes(row[5])),
            "response": json.loads(bytes(row[6])),
            "committed_at": row[10],
        }

    def list_slots(self, after: int = -1, limit: int = 100) -> list[dict[str, Any]]:
        """(slot, time, idempotency_key) of slots with index > ``after``, in order."""
        con = self._connect(readonly=True)
        try:
            rows = con.execute(
                "SELECT slot, time, idempotency_key FROM slots WHERE slot > ? ORDER BY slot "
                "LIMIT ?",
                (int(after), int(limit)),
            ).fetchall()
        finally:
            con.close()
        return [{"slot": r[0], "time": r[1], "idempotency_key": r[2]} for r in rows]

    def count(self) -> int:
        """Number of accepted slots."""
        return int(self._con.execute("SELECT COUNT(*) FROM slots").fetchone()[0])
