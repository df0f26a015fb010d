"""One executor for every parallel part of eqglb, and worker processes that exit when
the process that started them dies.

Executor
--------
:class:`Executor` runs one function over many tasks on one of :data:`BACKENDS`, with the
same code for all three: ``"serial"`` (in the calling process), ``"process"`` (a
:class:`concurrent.futures.ProcessPoolExecutor` on this machine) and ``"ray"`` (Ray
tasks on a local instance started on demand, or on the cluster at ``address``). The
sweep (:func:`eqglb.sweep.run_sweep`) and the streaming solver
(:class:`eqglb.structured.StreamingOffline`) both use it. A per-worker
``initializer`` holds what every task reads (e.g. the streaming solver's compact LPs);
:meth:`Executor.share` puts a large object once where workers read it (Ray's object
store; elsewhere the object itself) and :func:`resolve` reads it back in a task.
``"local"``, the sweep's old name of ``"process"``, is accepted with a deprecation
warning (:func:`check_backend`).

Worker death
------------
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
    "BACKENDS",
    "EXIT_CODE",
    "Executor",
    "POLL_S",
    "Reaper",
    "check_backend",
    "children",
    "pool_initializer",
    "resolve",
    "set_parent_death_signal",
    "shared_reaper",
    "silence_highs_banner",
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


# --------------------------------------------------------------------------- the executor
#: Names of the parallel backends, the same for every command and function.
BACKENDS: tuple[str, ...] = ("serial", "process", "ray")
#: Old names still accepted (with a deprecation warning): old name -> backend.
BACKEND_ALIASES: dict[str, str] = {"local": "process"}
_HIGHS_QUIET = False


def check_backend(name: str, option: str = "backend") -> str:
    """The backend called ``name`` (one of :data:`BACKENDS`).

    ``"local"`` (the sweep's name before 0.x) is taken as ``"process"`` with a
    :class:`DeprecationWarning`; any other name raises
    :class:`eqglb.errors.ConfigError` naming ``option`` and the valid names.
    """
    if name in BACKEND_ALIASES:
        import warnings

        new = BACKEND_ALIASES[name]
        warnings.warn(
            f"{option} {name!r} is deprecated; use {new!r} (the same worker processes)",
            DeprecationWarning,
            stacklevel=3,
        )
        return new
    if name not in BACKENDS:
        from eqglb.errors import ConfigError

        valid = ", ".join(repr(b) for b in BACKENDS)
        raise ConfigError(f"{option} = {name!r}; use one of {valid}")
    return name


def silence_highs_banner() -> None:
    """Construct one HiGHS instance with stdout redirected, so its banner is not printed.

    HiGHS prints a copyright banner to the C-level stdout the first time it is created in
    a process; later instances are silent (in a worker the banner would scribble over the
    driver's progress bar). Does nothing after the first call in a process, if highspy is
    not installed, or if stdout has no file descriptor.
    """
    global _HIGHS_QUIET
    if _HIGHS_QUIET:
        return
    _HIGHS_QUIET = True
    try:
        import highspy
    except ImportError:
        return
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
    except (AttributeError, OSError, ValueError):
        fd = 1
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stdout.flush()
    try:
        saved = os.dup(fd)
    except OSError:
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        del h
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            ctypes.CDLL(None).fflush(None)  # flush C stdio before restoring the descriptor
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(null)


class Shared:
    """An object put once where every worker can read it (see :meth:`Executor.share`)."""

    __slots__ = ("ref",)

    def __init__(self, ref: Any) -> None:
        self.ref = ref


def resolve(value: Any) -> Any:
    """The object behind a :meth:`Executor.share` handle (anything else is returned as
    it is); call it in the task function."""
    if not isinstance(value, Shared):
        return value
    if type(value.ref).__name__ == "ObjectRef":
        import ray

        return ray.get(value.ref)
    return value.ref


#: Per-worker initialisers already run in this (Ray worker) process, by executor token.
_RAY_READY: set[str] = set()


def _ray_call(
    token: str, init: list[Any], fn: Callable[[Any], Any], task: Any
) -> Any:  # pragma: no cover - runs in Ray workers
    """Ray task body: run the executor's initializer once per worker process, then ``fn``.

    ``init`` is ``[initializer, initargs_ref]`` inside a list, so that Ray does not fetch
    the initializer's arguments for every task.
    """
    if init and token not in _RAY_READY:
        import ray

        initializer, ref = init
        initializer(*ray.get(ref))
        _RAY_READY.add(token)
    return fn(task)


def _worker_died(exc: BaseException, attempts: int) -> RuntimeError:
    return RuntimeError(
        f"worker died {attempts} time(s) while running this task "
        f"({type(exc).__name__}: {exc}); run it again to retry"
    )


class Executor:
    """Run one function over tasks on ``serial``, ``process`` or ``ray`` (module docstring).

    Parameters
    ----------
    backend : {"serial", "process", "ray"}
        Where tasks run (``"local"``: deprecated name of ``"process"``).
    workers : int, optional
        Worker processes (``process``) or CPUs of a local Ray instance started here
        (``ray``). Default: the number of CPUs.
    initializer, initargs
        Run as ``initializer(*initargs)`` once in every worker before its first task
        (and once in this process for ``serial``, with ``local_initargs`` if given).
    address : str, optional
        Address of a running Ray cluster (``"auto"``, ``"ray://host:10001"``).
    start_method : str, optional
        ``multiprocessing`` start method of the process pool; default ``fork`` where
        available, else ``spawn``. ``forkserver`` with ``preload`` forks workers from a
        clean single-threaded server that has those modules imported.
    max_retries : int
        How often :meth:`as_completed` resubmits a task whose worker process died.
    inline_single : bool
        With ``process`` and one worker, run in this process (``serial``) instead.
    shutdown_ray : bool
        Shut a Ray instance started here down in :meth:`close` (else it is kept for
        later executors and ends with this process).

    Worker processes end with this process, even when it is killed (:func:`watch_parent`,
    :class:`Reaper`). Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        backend: str = "process",
        workers: int | None = None,
        *,
        initializer: Callable[..., Any] | None = None,
        initargs: Sequence[Any] = (),
        local_initargs: Sequence[Any] | None = None,
        address: str | None = None,
        start_method: str | None = None,
        preload: Sequence[str] = (),
        max_retries: int = 0,
        inline_single: bool = False,
        shutdown_ray: bool = True,
    ) -> None:
        self.backend = check_backend(backend)
        if workers is not None and workers < 1:
            from eqglb.errors import ConfigError

            raise ConfigError(f"workers = {workers}; give at least 1")
        self.workers = int(workers or os.cpu_count() or 1)
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self.address = address
        self.max_retries = int(max_retries)
        self._start_method = start_method
        self._preload = list(preload)
        self._pool: Any = None
        self._ray: Any = None
        self._remote: Any = None
        self._ray_started = False
        self._ray_init: list[Any] = []
        self._shutdown_ray = shutdown_ray
        self._reaper: Reaper | None = None
        self._token = secrets.token_hex(8)
        if self.backend == "process" and inline_single and self.workers <= 1:
            self.backend = "serial"
        if self.backend == "serial":
            if initializer is not None:
                args = self.initargs if local_initargs is None else tuple(local_initargs)
                initializer(*args)
        elif self.backend == "ray":
            self._start_ray()

    # ------------------------------------------------------------------ set-up
    def _context(self) -> Any:
        import multiprocessing

        methods = multiprocessing.get_all_start_methods()
        method = self._start_method
        if method is None or method not in methods:
            method = "fork" if "fork" in methods else "spawn"
        ctx = multiprocessing.get_context(method)
        if method == "forkserver" and self._preload:
            ctx.set_forkserver_preload(self._preload)
        return ctx

    def _new_pool(self, size: int) -> Any:
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            max_workers=max(1, min(self.workers, size)),
            mp_context=self._context(),
            initializer=pool_initializer,
            initargs=(os.getpid(), self.initializer, self.initargs),
        )

    def _start_ray(self) -> None:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise ImportError(
                "backend='ray' needs Ray; install it with `pip install 'eqglb[ray]'` "
                "(or `pip install 'ray[default]'`)"
            ) from exc
        import logging

        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, logging_level=logging.WARNING)
            else:
                # the local instance dies with this process, even by SIGKILL
                reaper = Reaper() if self._shutdown_ray else shared_reaper()
                if self._shutdown_ray:
                    self._reaper = reaper
                with reaper.marking():
                    ray.init(
                        num_cpus=self.workers,
                        include_dashboard=False,
                        log_to_driver=False,
                        logging_level=logging.WARNING,
                    )
            self._ray_started = True
        self._ray = ray
        self._remote = ray.remote(num_cpus=1, max_retries=self.max_retries)(_ray_call)
        if self.initializer is not None:
            self._ray_init = [self.initializer, ray.put(self.initargs)]

    def share(self, obj: Any) -> Any:
        """A handle of ``obj`` for tasks: put once in Ray's object store (``ray``); the
        object itself elsewhere (sent with each task). Read it in the task with
        :func:`resolve`."""
        if self.backend == "ray":
            return Shared(self._ray.put(obj))
        return obj

    # ------------------------------------------------------------------ running
    def _ray_submit(self, fn: Callable[[Any], Any], task: Any) -> Any:
        return self._remote.remote(self._token, self._ray_init, fn, task)

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any]) -> Iterator[Any]:
        """``fn(task)`` of every task, in the order of ``tasks`` (a task's exception is
        raised when its result is reached)."""
        tasks = list(tasks)
        if self.backend == "serial":
            return map(fn, tasks)
        if self.backend == "ray":
            refs = [self._ray_submit(fn, t) for t in tasks]
            return (self._ray.get(r) for r in refs)
        if self._pool is None:
            self._pool = self._new_pool(self.workers)
        futures = [self._pool.submit(fn, t) for t in tasks]
        return (f.result() for f in futures)

    def as_completed(
        self,
        fn: Callable[[Any], Any],
        tasks: Sequence[Any],
        on_retry: Callable[[int], None] | None = None,
    ) -> Iterator[tuple[int, Any, BaseException | None]]:
        """``(index, result, None)`` or ``(index, None, exception)`` of every task, in
        the order they finish.

        A task whose worker process died is resubmitted up to ``max_retries`` times
        (``on_retry(index)`` is called each time; the process pool is restarted, Ray
        retries the task itself), then reported with a :class:`RuntimeError`. An
        interruption stops the workers at once.
        """
        tasks = list(tasks)
        if self.backend == "serial":
            for i, t in enumerate(tasks):
                try:
                    yield i, fn(t), None
                except Exception as exc:
                    yield i, None, exc
            return
        if self.backend == "ray":
            yield from self._ray_completed(fn, tasks)
            return
        yield from self._process_completed(fn, tasks, on_retry)

    def _ray_completed(
        self, fn: Callable[[Any], Any], tasks: list[Any]
    ) -> Iterator[tuple[int, Any, BaseException | None]]:
        ray = self._ray
        pending = {self._ray_submit(fn, t): i for i, t in enumerate(tasks)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    try:
                        res = ray.get(ref)
                    except Exception as exc:  # RayTaskError, WorkerCrashedError
                        yield i, None, exc
                    else:
                        yield i, res, None
        except BaseException:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise

    def _process_completed(
        self,
        fn: Callable[[Any], Any],
        tasks: list[Any],
        on_retry: Callable[[int], None] | None,
    ) -> Iterator[tuple[int, Any, BaseException | None]]:
        from concurrent.futures import as_completed
        from concurrent.futures.process import BrokenProcessPool

        attempts = dict.fromkeys(range(len(tasks)), 0)
        queue = list(range(len(tasks)))
        while queue:
            retry: list[int] = []
            pool = self._new_pool(len(queue))
            try:
                futures = {pool.submit(fn, tasks[i]): i for i in queue}
                for fut in as_completed(futures):
                    i = futures[fut]
                    try:
                        res = fut.result()
                    except BrokenProcessPool as exc:
                        attempts[i] += 1
                        if attempts[i] <= self.max_retries:
                            retry.append(i)
                            if on_retry is not None:
                                on_retry(i)
                        else:
                            yield i, None, _worker_died(exc, attempts[i])
                        continue
                    except Exception as exc:  # the task raised, or its result cannot unpickle
                        yield i, None, exc
                        continue
                    yield i, res, None
            except BaseException:  # interrupted: stop the workers now, not after their tasks
                _terminate(pool)
                raise
            pool.shutdown(wait=True)
            queue = retry

    # ------------------------------------------------------------------ tear-down
    def close(self) -> None:
        """Stop the workers (and a Ray instance started here, unless ``shutdown_ray`` is
        False); the executor cannot run tasks afterwards."""
        if self._pool is not None:
            _terminate(self._pool)
            self._pool = None
        if self._ray is not None and self._ray_started and self._shutdown_ray:
            self._ray.shutdown()
            self._ray_started = False
        if self._reaper is not None:
            self._reaper.stop()
            self._reaper = None

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _terminate(pool: Any) -> None:
    """Kill a process pool's workers and cancel what is queued."""
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            proc.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


if __name__ == "__main__" and sys.argv[1:2] == ["reap"]:
    _reap(int(sys.argv[2]), sys.argv[3], map(int, sys.argv[4:]))
