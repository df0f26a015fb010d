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
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["EXIT_CODE", "POLL_S", "pool_initializer", "set_parent_death_signal",
           "watch_parent"]

#: Polling period of the watchdog thread where no pidfd is available [s].
POLL_S = 0.25
#: Exit status of a worker that ends because its driver died.
EXIT_CODE = 75

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_started: dict[int, threading.Thread] = {}
_lock = threading.Lock()


def set_parent_death_signal(sig: int = signal.SIGKILL if hasattr(signal, "SIGKILL")
                            else 9) -> bool:
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


def pool_initializer(parent_pid: int, initializer: Callable[..., Any] | None = None,
                     initargs: Sequence[Any] = ()) -> None:
    """A pool ``initializer``: :func:`watch_parent` (``parent_pid``), then
    ``initializer(*initargs)`` if given.

    Use as ``Pool(n, initializer=pool_initializer, initargs=(os.getpid(), init, args))``.
    """
    watch_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)
