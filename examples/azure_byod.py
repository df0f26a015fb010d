"""Bring your own data: a scenario from the Azure LLM inference traces and your own tables.

A walk-through of :meth:`eqglb.Scenario.from_frames` with data as people hold it:

1. demand from a real trace: the Azure LLM inference trace 2023 (conversation service,
   about one hour of requests; Patel et al., ISCA 2024, CC-BY 4.0) counted per 5-minute
   slot with :func:`eqglb.io.azure.azure_arrivals`. The trace carries no user region, so
   per-region demand is a stated modelling choice: shifted, weighted copies of the one
   profile (:func:`eqglb.io.azure.spread_over_regions`);
2. site signals as wide pandas DataFrames (time index, one column per data centre) in the
   units a data provider gives: price [USD/MWh], carbon intensity [g CO2/kWh], water
   [L/kWh]; columns deliberately in another order than the data centre list (they are
   aligned by name, never by position);
3. energy per output token [Wh/token] with the trace's mean output tokens per request;
4. two model sizes, capacity in GPU-seconds, and a route table;
5. policies compared, results as labelled DataFrames (``Evaluation.to_frame``,
   ``Dispatch.to_frame``).

Run (about 5 s)::

    python examples/azure_byod.py
    python examples/azure_byod.py --trace ../shared/data/azure-llm-2023/AzureLLMInferenceTrace_code.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = (
    ROOT.parent / "shared" / "data" / "azure-llm-2023" / "AzureLLMInferenceTrace_conv.csv"
)

DATACENTERS = ["virginia", "dublin", "tokyo"]
REGIONS = ["us-east", "europe", "japan"]
MODELS = ["small-8b", "large-70b"]


def build_scenario(trace: Path, slot: str = "5min"):
    """The walk-through's Scenario (see the module docstring)."""
    import numpy as np
    import pandas as pd

    from eqglb import Scenario
    from eqglb.io.azure import azure_arrivals, spread_over_regions

    arrivals = azure_arrivals(trace, slot=slot)  # [requests/slot] per slot
    profile = arrivals["requests"].astype(float)
    # modelling choice: each region sees the profile shifted by a few slots, with weights
    # (the trace has no regions); x5 so that the three regions together are a busy service
    demand = 5 * spread_over_regions(
        profile, REGIONS, utc_offsets=[0.0, 0.25, 0.5], weights=[0.5, 0.3, 0.2]
    )
    time = demand.index
    T = len(time)
    hours = np.asarray(time.hour + time.minute / 60.0)

    # site signals in provider units, columns in another order than DATACENTERS
    rng = np.random.default_rng(0)
    shuffled = ["tokyo", "virginia", "dublin"]
    price_mwh = pd.DataFrame(
        {
            "tokyo": 140.0 + 5 * np.sin(hours),
            "virginia": 60.0 + 8 * np.cos(hours),
            "dublin": 110.0 + rng.normal(0, 3, T),
        },
        index=time,
    )[shuffled]  # [USD/MWh]
    carbon_g = pd.DataFrame({"virginia": 380.0, "dublin": 290.0, "tokyo": 460.0}, index=time)[
        shuffled
    ]  # [g CO2/kWh]
    wue = pd.DataFrame({"virginia": 1.8, "dublin": 0.4, "tokyo": 1.1}, index=time)  # [L/kWh]
    ewif = pd.DataFrame({"virginia": 2.0, "dublin": 1.5, "tokyo": 1.7}, index=time)  # [L/kWh]
    pue = pd.Series({"dublin": 1.15, "tokyo": 1.3, "virginia": 1.2})  # [-]

    # energy per output token [Wh/token] by model; tokens per request from the trace
    wh_per_token = pd.DataFrame(
        {"small-8b": [0.01] * 3, "large-70b": [0.05] * 3}, index=DATACENTERS
    )
    tokens = float(arrivals.attrs["mean_generated_tokens"])
    gpu_s = pd.Series({"small-8b": 0.5, "large-70b": 4.0})  # [GPU-s/request]
    # capacity [GPU-s/slot]: 300 s per 5-minute slot x GPUs per site
    # (the large model cannot serve every request: it is rationed between the regions)
    capacity = pd.Series({"virginia": 300.0 * 48, "dublin": 300.0 * 28, "tokyo": 300.0 * 16})
    quality_loss = pd.Series({"small-8b": 0.35, "large-70b": 0.0})  # [-]
    # routes: every region may use its home site and one neighbour
    routes = pd.DataFrame(False, index=DATACENTERS, columns=REGIONS)
    for dc, regs in {
        "virginia": ["us-east", "europe"],
        "dublin": ["europe", "us-east"],
        "tokyo": ["japan", "us-east"],
    }.items():
        routes.loc[dc, regs] = True
    allowed = np.repeat(routes.to_numpy()[:, :, None], len(MODELS), axis=2)

    return Scenario.from_frames(
        demand=demand,
        price=price_mwh,
        carbon_intensity=carbon_g,
        wue=wue,
        ewif=ewif,
        pue=pue,
        energy_per_request=wh_per_token,
        tokens_per_request=tokens,
        capacity_per_request=gpu_s,
        capacity=capacity,
        quality_loss=quality_loss,
        allowed=allowed,
        datacenters=DATACENTERS,
        regions=REGIONS,
        models=MODELS,
        units={
            "demand": "requests/slot",
            "price": "USD/MWh",
            "carbon_intensity": "g/kWh",
            "energy_per_request": "Wh/token",
        },
        name="azure-conv-3x3x2",
        description="Azure LLM conversation trace, 3 sites",
    )


def main(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--trace",
        type=Path,
        default=DEFAULT_TRACE,
        help="an Azure LLM inference trace CSV (default: the conversation trace "
        "in ../shared/data/azure-llm-2023)",
    )
    ap.add_argument("--slot", default="5min", help="slot length, e.g. 5min, 15min (default 5min)")
    args = ap.parse_args(argv)
    if not args.trace.is_file():
        ap.error(
            f"--trace {args.trace}: no such file; give an Azure LLM trace CSV "
            "(TIMESTAMP, ContextTokens, GeneratedTokens)"
        )

    import pandas as pd

    from eqglb.cli import silence_highs_banner
    from eqglb.comparison import equity_effect
    from eqglb.defaults import build_objective
    from eqglb.policies import make_policy
    from eqglb.simulate import run_policy

    silence_highs_banner()
    sc = build_scenario(args.trace, args.slot)
    T, N, J, K = sc.shape
    print(
        f"{sc.name}: {N} data centres, {J} regions, {K} models, {T} slots of "
        f"{sc.slot_hours * 60:g} min; {sc.demand.sum():,.0f} requests"
    )
    # the price columns were given as tokyo, virginia, dublin: aligned by name
    print(
        "price [USD/kWh] in slot 0:",
        {dc: round(float(p), 4) for dc, p in zip(sc.datacenters, sc.price[0], strict=True)},
    )

    obj = build_objective(sc)
    evals, dispatches = {}, {}
    for name in ("energy", "weighted", "equitable"):
        dispatches[name], evals[name] = run_policy(sc, make_policy(name, obj), obj)
    frame = pd.concat([ev.to_frame() for ev in evals.values()], ignore_index=True)
    wide = frame[frame["quantity"].isin(["carbon", "water", "social"])].pivot_table(
        index=["quantity", "name"], columns="policy", values="value"
    )
    with pd.option_context("display.float_format", "{:,.3f}".format, "display.width", 160):
        print(wide)
    worst = equity_effect(evals, obj)["worst"]
    for key, row in worst.items():
        print(
            f"worst {key}: weighted {row['oblivious']:,.3f} -> equitable "
            f"{row['equitable']:,.3f} ({row['change_pct']:+.1f} %)"
        )
    mix = (
        dispatches["equitable"]
        .to_frame(sc)
        .groupby(["region", "model"], observed=True)["requests"]
        .sum()
        .unstack("model")
    )
    print("equitable: requests by region and model [requests]")
    print(mix.round(0).to_string())
    return sc, evals


if __name__ == "__main__":
    main()
