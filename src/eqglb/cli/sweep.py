"""``eqglb sweep``: a grid over q, weights, policies and scenarios (see docs/sweep.md).

The sweep itself is :mod:`eqglb.sweep`; this module parses the options (the shared
objective options with ``--q`` and ``--mu-<burden>`` repeatable) and prints the frontier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from eqglb.burdens import BURDENS
from eqglb.cli import common
from eqglb.cli.common import AddressOpt, BackendOpt
from eqglb.cli.options import ObjectiveOptions, objective_options
from eqglb.sweep import (
    DEFAULT_DAYS,
    frontier_table,
    render_frontier,
    run_sweep,
    spec_from_options,
    write_outputs,
)

__all__ = ["sweep_command"]

_o = typer.Option
SpecOpt = Annotated[
    Path | None,
    _o(
        "--spec",
        metavar="FILE",
        help="Sweep specification (TOML, see docs/sweep.md). Options "
        "given below override its fields.",
    ),
]
PolicyListOpt = Annotated[
    list[str] | None,
    _o(
        "--policy",
        "-p",
        metavar="NAME",
        help="Policy solved at every point; repeat for several. Default: equitable.",
    ),
]
BaselineNameOpt = Annotated[
    str | None,
    _o(
        "--baseline",
        metavar="POLICY",
        help="Policy solved once per scenario; the energy-cost "
        "overhead [%] is measured against it ('none': no baseline). Default: cost-only.",
    ),
]
SweepDaysOpt = Annotated[
    int | None,
    _o(
        "--days",
        min=1,
        metavar="N",
        help=f"Horizon of the built-in scenario [days]. Default: {DEFAULT_DAYS}.",
    ),
]
SeedListOpt = Annotated[
    list[int] | None,
    _o(
        "--seed",
        min=0,
        metavar="SEED",
        help="Seed of the built-in scenario; repeat for several scenarios. Default: 0.",
    ),
]
ScenarioListOpt = Annotated[
    list[Path] | None,
    _o(
        "--scenario",
        "-s",
        metavar="DIR",
        help="Scenario folder (scenario.toml + tables); repeat "
        "for several. Default: the built-in scenario.",
    ),
]
WorkersOpt = Annotated[
    int | None,
    _o(
        "--workers",
        min=1,
        metavar="N",
        help="Worker processes (process; default 2) or CPUs of the "
        "local Ray instance (ray; default: all cores).",
    ),
]
RetriesOpt = Annotated[
    int,
    _o(
        "--max-retries",
        min=0,
        metavar="N",
        help="Resubmissions of a point whose worker process died.",
    ),
]
SweepOutOpt = Annotated[
    Path,
    _o(
        "--out",
        "-o",
        metavar="DIR",
        help="Output folder: points/ (one result file per point, "
        "reused by the next run), results.csv, frontier.csv, frontier.png.",
    ),
]
PlotOpt = Annotated[bool, _o("--plot/--no-plot", help="Write frontier.png.")]
ProgressOpt = Annotated[bool, _o("--progress/--no-progress", help="Show a progress bar on stderr.")]


@objective_options(multiple=True)
def sweep_command(
    spec: SpecOpt = None,
    objective: ObjectiveOptions = ObjectiveOptions(),  # noqa: B008 (the shared options)
    policy: PolicyListOpt = None,
    baseline: BaselineNameOpt = None,
    days: SweepDaysOpt = None,
    seed: SeedListOpt = None,
    scenario: ScenarioListOpt = None,
    backend: BackendOpt = "process",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
    max_retries: RetriesOpt = 3,
    out: SweepOutOpt = Path("eqglb-sweep"),
    plot: PlotOpt = True,
    progress: ProgressOpt = True,
) -> None:
    """Sweep q and weights; print the trade-off frontier; write results under --out.

    Each point solves a policy (default: equitable) with one norm order q for every term
    (but those fixed by --q-<burden>) and one weight setting (the grid of the
    --mu-<burden> given); a baseline policy (default: cost-only) is solved once per
    scenario and the energy-cost overhead [%] is measured against it. Results are stored
    per point under OUT/points as they complete, so running the same command again
    resumes an interrupted sweep. Writes OUT/results.csv, OUT/frontier.csv and
    OUT/frontier.png.
    """
    sweep = spec_from_options(
        spec,
        q=objective.q,
        mu={n: objective.mu.get(n) for n in BURDENS},
        q_terms=dict(objective.q_terms),
        combined_environment=True if objective.combined_env else None,
        total_quality=True if objective.total_quality else None,
        normalize=False if not objective.normalize else None,
        policy=policy,
        baseline=baseline,
        days=days,
        seed=seed,
        scenario=scenario,
    )
    backend = common.backend_name(backend)
    err = common.stderr()
    con = common.stdout()
    store = Path(out) / "points"
    df = run_sweep(
        sweep,
        store,
        backend=backend,
        workers=workers,
        address=address,
        progress=progress,
        max_retries=max_retries,
        console=err,
    )
    con.print(render_frontier(frontier_table(df), title=f"trade-off frontier, {len(df)} points"))
    con.print(
        "[dim]overhead: energy cost versus the baseline \\[%]; max/mean: peak-to-average "
        "ratio of carbon and water per data centre and of quality loss per region "
        "\\[-][/]"
    )
    paths = write_outputs(df, out, plot=plot)
    con.print(
        f"wrote {', '.join(escape(str(p)) for p in paths.values())} and "
        f"{len(df)} point files under {escape(str(store))}"
    )
    n_bad = int((~df["ok"]).sum())
    if n_bad:
        err.print(
            f"[red]{n_bad} point(s) failed[/] (see the error column of results.csv); "
            "run the same command again to retry them"
        )
        raise typer.Exit(1)
