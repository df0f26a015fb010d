"""``eqglb solve``: the certified offline optimum of a large scenario, streamed.

Runs :class:`eqglb.structured.StreamingOffline` (compact slot LPs priced in blocks of
slots on local worker processes or on Ray) and writes what a year-long, thousand-region
solve can hold: never the full dispatch, but

* ``summary.json``: status, objective [USD], certified lower bound [USD], gap [-], the
  objective's terms [USD], timings [s] and solver settings;
* ``datacenters.csv``: carbon [kg CO2] and water [L] per data centre (and every other
  data-centre burden that is priced, e.g. ``health_usd``);
* ``regions.csv``: quality loss per region [unit of S];
* ``loads.parquet``: requests served per (time, datacenter, model) [requests/slot];
* ``dispatch_slot_<t>.csv``: the full dispatch of each slot asked for with ``--slot``
  (rebuilt on demand from the stored prices), non-zero entries only [requests/slot].
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from eqglb.cli import common
from eqglb.cli.common import AddressOpt, BackendOpt, DaysOpt, ScenarioOpt, SeedOpt, WorkersOpt
from eqglb.cli.options import ObjectiveOptions, objective_options
from eqglb.defaults import DEFAULT_DAYS
from eqglb.errors import CLIError

__all__ = ["solve_command"]

TolOpt = Annotated[
    float,
    typer.Option(
        "--tol",
        min=0.0,
        metavar="GAP",
        help="Target certified relative gap (objective - lower bound) / objective [-].",
    ),
]
BlockOpt = Annotated[
    int | None,
    typer.Option(
        "--block-slots",
        min=1,
        metavar="N",
        help="Slots per block: blocks are priced in parallel and the master mixes whole blocks "
        "[slots]. Default: about slots / 48, at most 168 (one week of hours).",
    ),
]
TimeLimitOpt = Annotated[
    float | None,
    typer.Option(
        "--time-limit",
        min=0.0,
        metavar="S",
        help="Stop after this many seconds with the best dispatch so far and its certified gap.",
    ),
]
SlotOpt = Annotated[
    list[int] | None,
    typer.Option(
        "--slot", metavar="T", help="Also write the full dispatch of slot T (0-based); repeatable."
    ),
]
SolveOutOpt = Annotated[
    Path,
    typer.Option(
        "--out",
        "-o",
        metavar="DIR",
        help="Folder for summary.json, datacenters.csv, regions.csv, "
        "loads.parquet (created if missing).",
    ),
]


@objective_options
def solve_command(
    scenario: ScenarioOpt = None,
    objective: ObjectiveOptions = ObjectiveOptions(),  # noqa: B008 (the shared options)
    tol: TolOpt = 1e-4,
    block_slots: BlockOpt = None,
    workers: WorkersOpt = None,
    backend: BackendOpt = "process",
    address: AddressOpt = None,
    time_limit: TimeLimitOpt = None,
    slot: SlotOpt = None,
    days: DaysOpt = DEFAULT_DAYS,
    seed: SeedOpt = 0,
    out: SolveOutOpt = Path("eqglb-solve"),
) -> None:
    """Certified offline equitable optimum of a (large) scenario, streamed over time.

    Solves energy cost [USD] + mu_social ||S||_q + mu_carbon ||C||_q + mu_water ||W||_q
    exactly up to --tol with a certified lower bound, in memory that does not grow with
    the number of (region, data centre) routes, and writes regional totals and per-slot
    loads (not the full dispatch; ask for single slots with --slot).
    """
    from rich.markup import escape
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from eqglb.structured import StreamingOffline

    backend = common.backend_name(backend)
    common.check_out_dir(out)  # before the (long) solve
    sc = common.load_scenario(scenario, days=days, seed=seed)
    T, N, J, K = sc.shape
    for t in slot or []:
        if not 0 <= t < T:
            raise CLIError(f"--slot {t} is outside the scenario's slots 0..{T - 1}")
    obj = objective.build(sc)
    con = common.stdout()
    con.print(
        f"[bold]{escape(sc.name)}[/]: {N} data centres, {J} regions, {K} models, "
        f"{T} slots ({float(T) * N * J * K:.3g} variables)"
    )
    con.print(f"objective [USD]: {escape(obj.describe())}; target certified gap {tol:g}")
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[gap]}"),
        TimeElapsedColumn(),
        console=con,
        transient=False,
    ) as bar:
        task = bar.add_task("solving", total=1.0, gap="")

        def progress(d: dict[str, Any]) -> None:
            import math

            if d["event"] == "warm_start":
                bar.update(task, description=f"prices of a {d['slots']}-slot sample")
                return
            if d["event"] == "pricing":
                bar.update(
                    task, description=f"pricing pass {d['pass']}: block {d['done']}/{d['blocks']}"
                )
                return
            gap = max(float(d["gap"]), 1e-300)
            # progress on a log scale from a 100 % gap down to the target
            done = (
                min(1.0, max(0.0, math.log(gap) / math.log(max(tol, 1e-300)))) if tol > 0 else 0.0
            )
            bar.update(
                task,
                completed=done,
                description=f"iteration {d['iteration']}",
                gap=f"gap {d['gap']:.2e}  upper {d['upper']:.6g}  lower {d['lower']:.6g}",
            )

        solver = StreamingOffline(
            obj,
            tol=tol,
            block_slots=block_slots,
            workers=workers,
            backend=backend,
            address=address,
            time_limit=time_limit,
            progress=progress,
        )
        res = solver.solve(sc)
        bar.update(task, completed=1.0 if res.gap <= tol else None)
    written = write_result(out, sc, obj, res, slot or [])
    style = "green" if res.status == "optimal" else "yellow"
    con.print(
        f"[{style}]{res.status}[/]: objective {res.objective:.10g} USD, certified lower "
        f"bound {res.dual_bound:.10g} USD, gap {res.gap:.2e}, "
        f"{res.info['time']:.1f} s ({res.iterations} iterations, "
        f"{res.info['passes']} pricing passes)"
    )
    con.print(
        f"wrote {len(written)} files to {escape(str(out))}: " + ", ".join(p.name for p in written)
    )


def write_result(out: Path, sc: Any, obj: Any, res: Any, slots: list[int]) -> list[Path]:
    """Write the files of the module docstring; return their paths."""
    import numpy as np
    import pandas as pd

    from eqglb._json import write_json
    from eqglb.burdens import BURDENS
    from eqglb.cli.options import shown_burdens
    from eqglb.metrics import lq_norm

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CLIError(f"cannot create output folder {out}: {exc.strerror}") from None
    c = res.costs
    shown = shown_burdens(obj)
    terms: dict[str, float] = {"energy_cost": c.energy_cost}
    combined = [n for n, b in BURDENS.items() if b.combinable] if obj.combined_environment else []
    for name in shown:
        if name not in combined:
            t = obj.terms[name]
            terms[name] = t.mu * lq_norm(getattr(c, name), t.q)
    if combined:
        env = sum(obj.terms[n].mu * np.asarray(getattr(c, n)) for n in combined)
        terms["environment"] = lq_norm(env, obj.terms[combined[0]].q)
    summary = {
        "scenario": sc.name,
        "objective_description": obj.describe(),
        "status": res.status,
        "objective_usd": res.objective,
        "lower_bound_usd": res.dual_bound,
        "gap": res.gap,
        "iterations": res.iterations,
        "terms_usd": terms,
        "info": {k: v for k, v in res.info.items() if k != "center"},
    }
    paths = []
    paths.append(write_json(out / "summary.json", summary))
    p = out / "datacenters.csv"
    site = {
        f"{name}_{BURDENS[name].unit.split()[0].lower()}": getattr(c, name)
        for name in shown
        if BURDENS[name].side == "datacenter"
    }
    pd.DataFrame({"datacenter": list(sc.datacenters), **site}).to_csv(p, index=False)
    paths.append(p)
    p = out / "regions.csv"
    pd.DataFrame({"region": list(sc.regions), "quality_loss": c.social}).to_csv(p, index=False)
    paths.append(p)
    T, N, J, K = sc.shape
    loads = res.loads
    p = out / "loads.parquet"
    pd.DataFrame(
        {
            "time": np.repeat(sc.time, N * K),
            "datacenter": pd.Categorical.from_codes(
                np.tile(np.repeat(np.arange(N), K), T), list(sc.datacenters)
            ),
            "model": pd.Categorical.from_codes(np.tile(np.arange(K), T * N), list(sc.models)),
            "requests": loads.reshape(-1),
        }
    ).to_parquet(p, index=False)
    paths.append(p)
    for t in slots:
        y = res.slot_dispatch(int(t))
        i, j, k = np.nonzero(y > 0)
        p = out / f"dispatch_slot_{t}.csv"
        pd.DataFrame(
            {
                "time": sc.time[t],
                "datacenter": np.asarray(sc.datacenters)[i],
                "region": np.asarray(sc.regions)[j],
                "model": np.asarray(sc.models)[k],
                "requests": y[i, j, k],
            }
        ).to_csv(p, index=False)
        paths.append(p)
    return paths
