"""Test helpers: tiny hand-solvable scenarios and random feasible scenarios.

Used by eqglb's own tests and by anyone testing code built on eqglb. :func:`scenarios`
is a hypothesis strategy and needs the ``test`` extra (hypothesis).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from eqglb.scenario import Scenario

__all__ = ["random_scenario", "scenarios", "two_site_scenario"]


def two_site_scenario(**over: Any) -> Scenario:
    """2 data centres (a, b), 1 region, 1 model, 1 slot: see tests/policies/test_solver.py."""
    kw = dict(
        datacenters=["a", "b"],
        regions=["r"],
        models=["m"],
        time=pd.DatetimeIndex(["2022-01-01 00:00"]),
        demand=[[10.0]],
        price=[[0.1, 0.2]],
        carbon_intensity=[[0.5, 0.1]],
        wue=[[0.0, 0.0]],
        ewif=[[0.0, 0.0]],
        pue=[1.0, 1.0],
        energy_per_request=[[1.0], [1.0]],
        capacity_per_request=[1.0],
        capacity=[10.0, 10.0],
        quality_loss=[0.0],
        home=["a"],
        name="two-site",
    )
    kw.update(over)
    return Scenario(**kw)


def random_scenario(
    rng: np.random.Generator,
    T: int,
    N: int,
    J: int,
    K: int,
    per_model: bool = False,
    slack: float = 1.3,
) -> Scenario:
    """Random feasible scenario: capacity is what a random allowed dispatch uses x [1, slack]."""
    allowed = rng.random((N, J, K)) < 0.7
    for j in range(J):  # every region reachable
        if not allowed[:, j, :].any():
            allowed[rng.integers(N), j, rng.integers(K)] = True
    y0 = rng.uniform(0.0, 10.0, (T, N, J, K)) * allowed[None]
    y0[rng.random(y0.shape) < 0.3] = 0.0
    demand = y0.sum(axis=(1, 3))
    zero = demand <= 0  # keep every region with some demand
    if zero.any():
        ts, js = np.nonzero(zero)
        for tt, jj in zip(ts, js, strict=True):
            ii, kk = np.argwhere(allowed[:, jj, :])[0]
            y0[tt, ii, jj, kk] = 1.0
        demand = y0.sum(axis=(1, 3))
    r = rng.uniform(0.2, 3.0, K)
    if per_model:
        cap = y0.sum(axis=2) * rng.uniform(1.0, slack, (T, N, K)) + 0.5
    else:
        cap = np.einsum("tnjk,k->tn", y0, r) * rng.uniform(1.0, slack, (T, N)) + 0.5
    return Scenario(
        datacenters=tuple(f"dc{i}" for i in range(N)),
        regions=tuple(f"reg{j}" for j in range(J)),
        models=tuple(f"m{k}" for k in range(K)),
        time=pd.date_range("2022-09-22", periods=T, freq="h"),
        demand=demand,
        price=rng.uniform(-0.01, 0.3, (T, N)),
        carbon_intensity=rng.uniform(0.02, 0.9, (T, N)),
        wue=rng.uniform(0.1, 4.0, (T, N)),
        ewif=rng.uniform(0.0, 3.0, (T, N)),
        pue=rng.uniform(1.05, 1.5, N),
        energy_per_request=rng.uniform(0.5, 3.0, (N, K)),
        capacity_per_request=r,
        capacity=cap,
        capacity_mode="per_model" if per_model else "shared",
        quality_loss=np.sort(rng.uniform(0.0, 1.0, K))[::-1] * (np.arange(K) < K - 1),
        allowed=allowed,
        latency=rng.uniform(1, 100, (N, J)),
        name="random",
    )


def _strategy() -> Any:
    from hypothesis import strategies as st

    @st.composite
    def scenarios(
        draw: Any, max_t: int = 3, max_n: int = 3, max_j: int = 3, max_k: int = 3
    ) -> Scenario:
        """Hypothesis strategy: random feasible scenarios of at most the given sizes."""
        seed = draw(st.integers(0, 2**31 - 1))
        T = draw(st.integers(1, max_t))
        N = draw(st.integers(1, max_n))
        J = draw(st.integers(1, max_j))
        K = draw(st.integers(1, max_k))
        per_model = draw(st.booleans())
        return random_scenario(np.random.default_rng(seed), T, N, J, K, per_model=per_model)

    return scenarios


def scenarios(max_t: int = 3, max_n: int = 3, max_j: int = 3, max_k: int = 3) -> Any:
    """Hypothesis strategy of random feasible scenarios (needs hypothesis)."""
    return _strategy()(max_t=max_t, max_n=max_n, max_j=max_j, max_k=max_k)
