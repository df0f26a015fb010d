"""Issue 15 W1: no worker outlives a driver killed with SIGKILL.

Each test starts a real driver in its own session (``start_new_session``), waits until its
workers run, SIGKILLs the driver and then watches every process of that session (a
process keeps its session when it is orphaned, so none can hide by being re-parented):
all must be gone within :data:`GRACE_S` seconds. Linux only (``/proc``); the CI runs
Linux.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from eqglb import _workers

GRACE_S = 5.0  # time the survivors get to go [s]
START_S = 120.0  # time the driver gets to start its workers [s]
ROOT = Path(__file__).resolve().parents[1]


def _session(sid: int) -> dict[int, str]:
    """pid -> command line of every live (non-zombie) process of session ``sid``."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
                out[int(d.name)] = (
                    (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:160]
                )
        except (OSError, ValueError):
            continue
    return out


def _kill_and_watch(driver: subprocess.Popen, ready, what: str) -> None:
    """Wait for ``ready(processes)``, SIGKILL the driver, demand an empty session."""
    sid = driver.pid
    try:
        t0 = time.monotonic()
        while not ready(procs := _session(sid)):
            if driver.poll() is not None:
                out = driver.stdout.read() if driver.stdout else ""
                pytest.fail(
                    f"the driver ended (status {driver.returncode}) before its "
                    f"{what} started: {out[-2000:]}"
                )
            if time.monotonic() - t0 > START_S:
                pytest.fail(f"{what} did not start within {START_S} s: {procs}")
            time.sleep(0.1)
        assert len(procs) >= 3, procs
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        t1 = time.monotonic()
        while (left := _session(sid)) and time.monotonic() - t1 < GRACE_S:
            time.sleep(0.1)
        assert not left, (
            f"{len(left)} process(es) of the killed driver still alive "
            f"{GRACE_S} s after SIGKILL (were {len(procs)}): {left}"
        )
    finally:
        for pid in _session(sid):  # never leak what the test started
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        if driver.stdout is not None:
            driver.stdout.close()


def _sweep(tmp_path: Path, *extra: str) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "eqglb",
        "sweep",
        "--days",
        "3",
        "--no-progress",
        "--no-plot",
        "-o",
        str(tmp_path / "out"),
        *extra,
    ]
    for q in ("1", "1.5", "2", "3", "4", "6", "8", "inf"):
        args += ["--q", q]
    return subprocess.Popen(
        args,
        cwd=ROOT,
        start_new_session=True,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_sigkill_of_sweep_driver_ends_workers_forkserver_and_tracker(tmp_path):
    """Process backend: 2 forkserver workers, the forkserver and the resource tracker
    (before the fix all four were alive 180 s after the kill)."""
    driver = _sweep(tmp_path, "--backend", "process", "--workers", "2")

    def ready(procs: dict[int, str]) -> bool:
        forkserver = [p for p, c in procs.items() if "multiprocessing.forkserver" in c]
        return len(forkserver) >= 3  # the server and 2 workers forked from it

    _kill_and_watch(driver, ready, "forkserver and its 2 workers")


def test_sigkill_of_sweep_driver_ends_the_local_ray_instance(tmp_path):
    """Ray backend: the GCS server, raylet, its agents and the Ray workers (before the
    fix the dashboard and runtime-env agents lingered for about 70 s)."""
    driver = _sweep(tmp_path, "--backend", "ray", "--workers", "2")
    points = tmp_path / "out" / "points"

    def ready(procs: dict[int, str]) -> bool:
        agents = [p for p, c in procs.items() if "Agent" in c or "agent" in c]
        solved = points.is_dir() and any(points.iterdir())
        return bool(agents) and any("raylet" in c for c in procs.values()) and solved

    _kill_and_watch(driver, ready, "local Ray instance")


def _solve(tmp_path: Path, *extra: str) -> subprocess.Popen:
    args = [
        sys.executable,
        "-m",
        "eqglb",
        "solve",
        "--days",
        "14",
        "--workers",
        "2",
        "--out",
        str(tmp_path / "out"),
        *extra,
    ]
    return subprocess.Popen(
        args,
        cwd=ROOT,
        start_new_session=True,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_sigkill_of_streaming_solve_ends_its_local_ray_instance(tmp_path):
    """``eqglb solve --backend ray``: the local Ray instance the streaming solver starts
    and never shuts down itself (before the fix its agents lingered for about 70 s)."""
    driver = _solve(tmp_path, "--backend", "ray")

    def ready(procs: dict[int, str]) -> bool:
        return any("raylet" in c for c in procs.values()) and any(
            "Agent" in c for c in procs.values()
        )

    _kill_and_watch(driver, ready, "local Ray instance")


@pytest.mark.parametrize("pool", ["multiprocessing", "executor"])
def test_sigkill_of_a_fork_pool_parent_ends_its_workers(tmp_path_factory, pool):
    """A multiprocessing fork pool with :func:`eqglb._workers.pool_initializer` (as the
    streaming solver builds it): the kernel's parent-death signal ends the workers even
    while they are busy (a pool's idle workers end on their own when the task pipe
    closes; busy ones, as here, would spin forever)."""
    tmp_path = tmp_path_factory.mktemp(pool)
    script = textwrap.dedent("""
        import multiprocessing as mp, os, sys, time
        from eqglb._workers import pool_initializer
        def busy(_):
            while True:
                sum(range(10_000))
        if __name__ == "__main__":
            pool = mp.get_context("fork").Pool(2, initializer=pool_initializer,
                                               initargs=(os.getpid(),))
            pool.map_async(busy, range(2))
            print("ready", flush=True)
            time.sleep(600)
    """)
    if "executor" in str(tmp_path):  # the same through eqglb._workers.Executor
        script = textwrap.dedent("""
            import time
            from eqglb._workers import Executor
            def busy(_):
                while True:
                    sum(range(10_000))
            if __name__ == "__main__":
                ex = Executor("process", 2)  # fork, as the streaming solver's workers
                results = ex.map(busy, range(2))
                print("ready", flush=True)
                time.sleep(600)
        """)
    driver = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        start_new_session=True,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    _kill_and_watch(driver, lambda procs: len(procs) >= 3, "fork pool")


def test_watch_parent_ends_a_process_whose_driver_is_not_its_parent(tmp_path):
    """The watchdog thread follows a given pid that is not the parent (the forkserver
    case): when that process ends, the watcher exits with EXIT_CODE."""
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        watcher = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time; from eqglb._workers import "
                "watch_parent; watch_parent(int(sys.argv[1])); print('ready', flush=True); "
                "time.sleep(600)",
                str(target.pid),
            ],
            cwd=ROOT,
            text=True,
            stdout=subprocess.PIPE,
        )
        assert watcher.stdout is not None and watcher.stdout.readline() == "ready\n"
        assert watcher.poll() is None  # still running while the target lives
        target.kill()
        target.wait()
        assert watcher.wait(timeout=GRACE_S) == _workers.EXIT_CODE
    finally:
        for p in (target, locals().get("watcher")):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
            if p is not None and p.stdout is not None:
                p.stdout.close()


def test_parent_death_signal_is_set_on_linux():
    """prctl(PR_SET_PDEATHSIG) through ctypes works here (the CI runs Linux)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from eqglb._workers import set_parent_death_signal as s; "
            "import ctypes, signal; print(s()); libc = ctypes.CDLL(None); "
            "v = ctypes.c_int(); libc.prctl(2, ctypes.byref(v), 0, 0, 0); print(v.value)",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.split() == ["True", str(int(signal.SIGKILL))]


# --------------------------------------------------------------------------- the executor
_INIT: list[object] = []


def _init(value: object, here: bool = False) -> None:
    _INIT[:] = [value, here, os.getpid()]


def _read(task: int) -> tuple[int, object, int]:
    """Worker task: the task, what the initializer left, the worker's pid."""
    return task, _INIT[0] if _INIT else None, os.getpid()


def _die_once(marker: str) -> int:
    """Worker task: the first call kills its worker process (os._exit), later ones return."""
    path = Path(marker)
    if not path.exists():
        path.touch()
        os._exit(3)
    return os.getpid()


@pytest.mark.parametrize("backend", ["serial", "process"])
def test_executor_maps_in_order_with_the_initializer_in_every_worker(backend):
    with _workers.Executor(
        backend, 2, initializer=_init, initargs=("lp",), local_initargs=("lp-here", True)
    ) as ex:
        out = list(ex.map(_read, range(6)))
        shared = ex.share({"big": 1})
    assert [t for t, _, _ in out] == list(range(6))
    pids = {pid for _, _, pid in out}
    if backend == "serial":
        assert {v for _, v, _ in out} == {"lp-here"} and pids == {os.getpid()}
    else:
        assert {v for _, v, _ in out} == {"lp"} and os.getpid() not in pids
    assert _workers.resolve(shared) == {"big": 1}


def test_executor_retries_a_task_whose_worker_died(tmp_path):
    """as_completed resubmits a task whose worker died (max_retries), reports it as a
    RuntimeError once the retries are spent, and keeps the other tasks' results."""
    with _workers.Executor("process", 1, max_retries=1) as ex:
        retried: list[int] = []
        got = list(ex.as_completed(_die_once, [str(tmp_path / "m1")], on_retry=retried.append))
    assert retried == [0]
    ((i, pid, exc),) = got
    assert i == 0 and exc is None and pid != os.getpid()

    with _workers.Executor("process", 1, max_retries=0) as ex:
        got = sorted(ex.as_completed(_die_once, [str(tmp_path / "m2")]), key=lambda r: r[0])
    ((i, res, exc),) = got
    assert res is None and isinstance(exc, RuntimeError) and "worker died 1 time" in str(exc)


def test_executor_refuses_unknown_backends_and_renames_local():
    from eqglb.errors import ConfigError

    with pytest.raises(ConfigError, match="backend = 'dask'; use one of 'serial', 'process'"):
        _workers.Executor("dask")
    with pytest.warns(DeprecationWarning, match="'local' is deprecated"):
        ex = _workers.Executor("local", 1)
    assert ex.backend == "process"
    ex.close()
