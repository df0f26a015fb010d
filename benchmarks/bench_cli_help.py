"""Wall time of ``eqglb --help`` (and other quick commands) in fresh processes.

Runs each command ``--repeat`` times in a new subprocess (the console script, or
``python -m eqglb`` with ``--module``) and prints the median, minimum and maximum wall
time [s], plus the modules a bare ``import eqglb.cli`` pulls in that the CLI should not
need at start-up (numpy, pandas, cvxpy, scipy, pyarrow). Not a timed test: the figure
depends on the machine and its load.

Measured (2-core development machine, load average about 2 from other work): ``eqglb
--help`` median 0.138 s over 15 runs (min 0.122 s, max 0.174 s); ``python -m eqglb
--help`` median 0.116 s. Before the subcommands were made lazy (commit c33954b, every
subcommand module and pandas imported before parsing) ``python -m eqglb --help`` took
2.3-3.3 s (median 2.8 s over 5 runs) on the same machine, 6-10 s on a loaded one.

Usage::

    python benchmarks/bench_cli_help.py                  # eqglb --help, 15 runs
    python benchmarks/bench_cli_help.py --repeat 30 --command "eqglb run --help"
    python benchmarks/bench_cli_help.py --module         # python -m eqglb --help
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HEAVY = ("numpy", "pandas", "cvxpy", "scipy", "pyarrow")


def time_command(argv: list[str], repeat: int) -> list[float]:
    """Wall times [s] of ``repeat`` runs of ``argv``; raises if a run fails."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - t0)
        if res.returncode != 0:
            raise SystemExit(f"{shlex.join(argv)} exited {res.returncode}: {res.stderr}")
    return times


def heavy_imports() -> list[str]:
    """The heavy modules that ``import eqglb.cli`` imports (should be none)."""
    code = (
        "import sys, json, eqglb.cli; "
        f"print(json.dumps([m for m in {list(HEAVY)!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15, help="runs per command (default 15)")
    ap.add_argument(
        "--command", default="eqglb --help", help="command line to time (default: 'eqglb --help')"
    )
    ap.add_argument(
        "--module",
        action="store_true",
        help="run 'python -m eqglb ...' instead of the console script",
    )
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    argv = shlex.split(args.command)
    if args.module and argv[0] == "eqglb":
        argv = [sys.executable, "-m", "eqglb", *argv[1:]]
    elif shutil.which(argv[0]) is None:
        ap.error(f"--command: {argv[0]!r} is not on PATH; install eqglb or use --module")
    time_command(argv, 1)  # warm the file-system cache
    times = time_command(argv, args.repeat)
    print(
        f"{shlex.join(argv)}: median {statistics.median(times):.3f} s over {args.repeat} "
        f"runs (min {min(times):.3f} s, max {max(times):.3f} s)"
    )
    heavy = heavy_imports()
    print("heavy modules imported by `import eqglb.cli`: " + (", ".join(heavy) or "none"))


if __name__ == "__main__":
    main()
