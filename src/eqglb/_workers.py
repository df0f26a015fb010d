"""Worker processes that exit when the process that started them dies.

A process pool's workers outlive a driver killed with SIGKILL: they wait for work that
never comes (and each one keeps the pool's pipes, the forkserver and the resource tracker
alive). :func:`watch_parent`, run first in every worker (the pools' ``initializer``),
ends the worker within about :data:`POLL_S` seconds of the driver's death:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (through :mod:`ctypes`) has the kernel
  kill the worker when its parent process dies, at once and even while the worker is
  busy in native code; the parent is the driver for ``fork`` and ``spawn`` pools, the
  forkserver for ``forkserver`` pools;
- on every platform, a daemon thread watches the driver's process id (a Linux pidfd where
  available, else polling every :data:`POLL_S` seconds) and calls :func:`os._exit`
  when the driver is gone; this covers forkserver workers, whose parent is not the driver.

The thread needs the interpreter lock: a worker inside a long native call that holds it
exits when that call returns (the kernel signal has no such delay).

:func:`pool_initializer` chains the watchdog with a pool's own initializer.

A local Ray instance is a tree of processes the driver does not start itself (the GCS
server, the raylet, its agents and workers), so no initializer reaches them all; Ray kills
the GCS server, raylet and workers with the driver, but its agents linger for about a
minute. :class:`Reaper` (Linux) is a small watchdog process: started right before
``ray.init``, it follows the driver's children started since (and their descendants) and
SIGKILLs them when the driver dies; :meth:`Reaper.stop` ends it after a normal shutdown.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_CODE",
    "POLL_S",
    "Reaper",
    "children",
    "pool_initializer",
    "set_parent_death_signal",
    "shared_reaper",
    "watch_parent",
]

#: Polling period of the watchdog thread where no pidfd is available [s].
POLL_S = 0.25
#: Exit status of a worker that ends because its driver died.
EXIT_CODE = 75

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_started: dict[int, threading.Thread] = {}
_lock = threading.Lock()


def set_parent_death_signal(sig: int = signal.SIGKILL if hasattr(signal, "SIGKILL") else 9) -> bool:
    """Ask the Linux kernel to send ``sig`` to this process when its parent dies.

    Returns
    -------
    bool
        True where it was set (Linux with a C library), False elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # e.g. Windows: no such process
        return False
    return True


def _wait_for_death(pid: int, direct_parent: bool) -> None:
    """Return once process ``pid`` has ended."""
    pidfd = None
    if hasattr(os, "pidfd_open"):
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(pid)
    if pidfd is not None:
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            while not poller.poll(int(POLL_S * 1000 * 20)):  # readable once pid has ended
                pass
            return
        finally:
            os.close(pidfd)
    while _alive(pid) and not (direct_parent and os.getppid() != pid):
        time.sleep(POLL_S)


def watch_parent(parent_pid: int | None = None) -> None:
    """End this process (exit status :data:`EXIT_CODE`) when ``parent_pid`` dies.

    Parameters
    ----------
    parent_pid : int or None
        Process id of the driver to follow; default this process's parent. Pass the
        driver's ``os.getpid()`` from the driver (a forkserver worker's parent is the
        forkserver, not the driver).

    Calling it again in the same process for the same pid does nothing more.
    """
    pid = os.getppid() if parent_pid is None else int(parent_pid)
    set_parent_death_signal()
    with _lock:
        if pid in _started and _started[pid].is_alive():
            return
        direct = pid == os.getppid()
        if not _alive(pid) or (direct and os.getppid() != pid):
            os._exit(EXIT_CODE)  # the driver died before the watch began

        def run() -> None:
            _wait_for_death(pid, direct)
            os._exit(EXIT_CODE)

        th = threading.Thread(target=run, name=f"eqglb-watch-parent-{pid}", daemon=True)
        th.start()
        _started[pid] = th


def pool_initializer(
    parent_pid: int, initializer: Callable[..., Any] | None = None, initargs: Sequence[Any] = ()
) -> None:
    """A pool ``initializer``: :func:`watch_parent` (``parent_pid``), then
    ``initializer(*initargs)`` if given.

    Use as ``Pool(n, initializer=pool_initializer, initargs=(os.getpid(), init, args))``.
    """
    watch_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


# --------------------------------------------------------------------------- the reaper
_PROC = Path("/proc")
_MARK = "EQGLB_REAPER"  # environment variable that marks the processes to reap


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time [clock ticks]) of a live, non-zombie process, or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[19])


def _table() -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(_PROC):
            if entry.name.isdigit():
                st = _stat(int(entry.name))
                if st is not None:
                    out[int(entry.name)] = st
    return out


def children(pid: int | None = None) -> set[int]:
    """Process ids of the live children of ``pid`` (default this process); Linux only
    (empty elsewhere)."""
    me = os.getpid() if pid is None else pid
    return {p for p, (ppid, _) in _table().items() if ppid == me}


def _marked(token: str) -> set[int]:
    """Processes whose environment holds ``EQGLB_REAPER=<token>`` (inherited at start)."""
    needle = f"{_MARK}={token}".encode()
    out = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir(_PROC):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    env = (_PROC / entry.name / "environ").read_bytes()
                    if needle in env.split(b"\0"):
                        out.add(int(entry.name))
    return out


def _reap(driver: int, token: str, exclude: Iterable[int]) -> None:
    """Follow the children of ``driver`` (but those in ``exclude``) and their
    descendants; SIGKILL them all once ``driver`` is gone, and every process that
    inherited the environment mark ``token`` (which finds those orphaned meanwhile)."""
    me = os.getpid()
    table = _table()
    skip = {p: table[p][1] for p in exclude if p in table}
    skip[me] = table.get(me, (0, -1))[1]
    tracked: dict[int, int] = {}
    pidfd = None
    if hasattr(os, "pidfd_open"):
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(driver)
    poller = None
    if pidfd is not None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
    first = True
    while True:
        table = _table()
        for p, (ppid, start) in table.items():  # new children of the driver
            if ppid == driver and skip.get(p) != start:
                tracked.setdefault(p, start)
        grew = True
        while grew:  # add the descendants of what is tracked
            grew = False
            for p, (ppid, start) in table.items():
                if (
                    p not in tracked
                    and p != me
                    and ppid in tracked
                    and table.get(ppid, (0, -1))[1] == tracked[ppid]
                ):
                    tracked[p] = start
                    grew = True
        tracked = {p: s for p, s in tracked.items() if p in table and table[p][1] == s}
        if first:  # the driver may start what we follow now
            first = False
            with contextlib.suppress(OSError):
                sys.stdout.write("ready\n")
                sys.stdout.flush()
                sys.stdout.close()
        if poller is not None:
            dead = bool(poller.poll(int(POLL_S * 1000)))
        else:
            time.sleep(POLL_S)
            dead = not _alive(driver) or os.getppid() != driver
        if dead:
            break
    for _ in range(4):  # kill, then again for anything started meanwhile
        table = _table()
        for p in _marked(token) - {me}:
            if p in table:
                tracked.setdefault(p, table[p][1])
        for p, start in list(tracked.items()):
            if table.get(p, (0, -1))[1] == start:
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
        for p, (ppid, start) in table.items():
            if ppid in tracked and p not in tracked and p != me:
                tracked[p] = start
        time.sleep(0.05)


class Reaper:
    """A watchdog process that SIGKILLs the children this (driver) process starts from now
    on, and their descendants, when the driver dies (Linux; elsewhere it does nothing).

    It is ready when the constructor returns: start it right before what it should
    follow (e.g. ``ray.init``), and :meth:`stop` it after a normal shutdown of that.
    The watchdog runs this file with the standard library only (no eqglb import), so it
    starts in tens of milliseconds.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self.token = secrets.token_hex(8)
        if not sys.platform.startswith("linux") or not _PROC.is_dir():
            return
        exclude = children()
        self._proc = subprocess.Popen(
            [
                sys.executable,
                "-I",
                str(Path(__file__).resolve()),
                "reap",
                str(os.getpid()),
                self.token,
                *map(str, sorted(exclude)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            close_fds=True,
        )
        assert self._proc.stdout is not None
        self._proc.stdout.readline()  # "ready" (or EOF if it failed to start)
        self._proc.stdout.close()

    @contextlib.contextmanager
    def marking(self) -> Iterator[None]:
        """Within this block, processes started (and what they start later) carry the
        environment mark that the watchdog also kills by: wrap ``ray.init`` in it, so
        Ray workers the raylet starts later are found even once orphaned."""
        old = os.environ.get(_MARK)
        os.environ[_MARK] = self.token
        try:
            yield
        finally:
            if old is None:
                os.environ.pop(_MARK, None)
            else:
                os.environ[_MARK] = old

    @property
    def pid(self) -> int | None:
        """Process id of the watchdog, or None where none runs."""
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the watchdog process runs."""
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """End the watchdog (after a normal shutdown of what it follows)."""
        if self._proc is not None:
            with contextlib.suppress(OSError):
                self._proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
            self._proc = None


_shared: Reaper | None = None


def shared_reaper() -> Reaper:
    """One :class:`Reaper` for this process, started on first use and stopped at a
    normal exit (after the exit handlers registered later, such as Ray's shutdown), for
    callers that start a local Ray instance and never shut it down themselves."""
    global _shared
    with _lock:
        if _shared is None or not _shared.running:
            _shared = Reaper()
            atexit.register(_shared.stop)
        return _shared


if __name__ == "__main__" and sys.argv[1:2] == ["reap"]:
    _reap(int(sys.argv[2]), sys.argv[3], map(int, sys.argv[4:]))
