"""``eqglb scenario generate``: write a seeded synthetic scenario folder of any size.

The scenario is :func:`eqglb.synthetic.make_scenario` (what ``benchmarks/`` solves),
written with :func:`eqglb.io.scenario_format.write_scenario`, for users who want a large
scenario for ``eqglb solve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from eqglb.cli.common import check_out_dir, stdout
from eqglb.errors import CLIError

__all__ = ["generate_command", "scenario_app"]

scenario_app = typer.Typer(
    name="scenario",
    help="Make scenario folders (generate: a seeded synthetic scenario of any size).",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
)


@scenario_app.callback()
def _scenario_root() -> None:
    """Make scenario folders (see docs/scenario-format.md)."""


@scenario_app.command("generate")
def generate_command(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            metavar="DIR",
            help="Scenario folder to write (scenario.toml + tables); must not exist or be "
            "empty, unless --overwrite.",
        ),
    ],
    datacenters: Annotated[
        int,
        typer.Option("--datacenters", "-N", min=1, metavar="N", help="Number of data centres N."),
    ] = 10,
    regions: Annotated[
        int, typer.Option("--regions", "-J", min=1, metavar="J", help="Number of user regions J.")
    ] = 10,
    models: Annotated[
        int,
        typer.Option(
            "--models",
            "-K",
            min=1,
            metavar="K",
            help="Number of model sizes K (the largest has quality loss 0).",
        ),
    ] = 3,
    days: Annotated[
        int,
        typer.Option(
            "--days", min=1, metavar="D", help="Horizon [days] of hourly slots (T = 24 D)."
        ),
    ] = 7,
    seed: Annotated[
        int,
        typer.Option(
            "--seed", min=0, metavar="S", help="Seed; equal options give equal scenarios."
        ),
    ] = 0,
    reach: Annotated[
        int,
        typer.Option(
            "--reach",
            min=1,
            metavar="R",
            help="Each region may use its R nearest data centres (latency) [-].",
        ),
    ] = 5,
    capacity_mode: Annotated[
        str,
        typer.Option(
            "--capacity-mode",
            metavar="MODE",
            help="shared (one GPU-s pool per data centre) or per_model.",
        ),
    ] = "shared",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="FMT",
            help="Table format: csv or parquet (smaller, faster for large scenarios).",
        ),
    ] = "csv",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier scenario folder at --out.")
    ] = False,
) -> None:
    """Write a seeded synthetic scenario folder of any size (what the benchmarks use).

    Data centres and user regions scattered over the globe, routes to each region's
    nearest data centres, diurnal demand [requests/h], price [USD/kWh], carbon [kg
    CO2/kWh] and water [L/kWh] in local time with AR(1) noise, K model sizes, capacities
    that ration the best model at peak (see :mod:`eqglb.synthetic`). Solve it with
    ``eqglb solve --scenario DIR`` or ``eqglb run --scenario DIR``.
    """
    if capacity_mode not in ("shared", "per_model"):
        raise CLIError(f"--capacity-mode {capacity_mode!r}; use 'shared' or 'per_model'")
    if fmt not in ("csv", "parquet"):
        raise CLIError(f"--format {fmt!r}; use 'csv' or 'parquet'")
    check_out_dir(out)
    if (
        out.is_dir()
        and any(out.iterdir())
        and not overwrite
        and not (out / "scenario.toml").exists()
    ):
        raise CLIError(
            f"--out {out} is a folder with files that is not a scenario folder; "
            "give a new or empty folder"
        )
    if (out / "scenario.toml").exists() and not overwrite:
        raise CLIError(f"--out {out} already holds a scenario; add --overwrite to replace it")
    from eqglb.io.scenario_format import write_scenario
    from eqglb.synthetic import make_scenario

    sc = make_scenario(
        datacenters,
        regions,
        models,
        24 * days,
        reach=reach,
        seed=seed,
        capacity_mode=capacity_mode,
        name=f"synthetic-{datacenters}x{regions}x{models}x{24 * days}-seed{seed}",
    )
    path = write_scenario(sc, out, fmt=fmt, overwrite=overwrite)
    T, N, J, K = sc.shape
    stdout().print(
        f"wrote {path}: {N} data centres, {J} regions, {K} models, {T} hourly "
        f"slots (seed {seed}); solve it with eqglb solve --scenario {path}",
        markup=False,
    )
