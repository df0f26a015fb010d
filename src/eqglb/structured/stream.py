"""Streaming structured solver: year-long, 100 x 1000 x 5 problems in bounded memory.

:class:`StreamingOffline` solves the same offline equitable problem as
:class:`eqglb.structured.StructuredOffline` by the same Dantzig-Wolfe decomposition, but
never holds a (time, route) array nor a per-slot basis:

* **pricing** streams over *blocks* of consecutive slots (default about T / 48 slots, at most one week). Each block
  is priced by one worker, slot after slot, on the compact slot LP of
  :mod:`eqglb.structured.compact` (HiGHS dual simplex warm-started from the previous slot;
  the first slot of a block starts from the basis saved at that slot in the previous
  pass). Blocks run in parallel on local processes, or on Ray workers
  (``backend="ray"``), with the same code;
* **columns are aggregated per block**: a column is a whole block's dispatch at one price
  vector, summarised by its energy cost, regional totals (2N + J numbers) and per-slot
  data-centre loads (block length x N x K); the master chooses convex weights per block
  (solved by :func:`eqglb.structured.master.solve_master`, the same structured
  interior-point master as the in-memory solver);
* **certificate**: every slot contributes a Lagrangian bound computed from its capacity
  duals (valid for any prices), so ``objective - sum of bounds`` is a certified gap;
* **results**: regional totals, energy cost, per-slot loads per (data centre, model) and,
  on demand, any slot's full dispatch (:meth:`StreamingResult.slot_dispatch` re-solves
  that slot's block at the stored prices from the stored starting basis).

Memory: the scenario's own arrays (demand is T x J), the column pool (per column: block
length x N x K loads in float32 plus 2N + J totals) and one HiGHS instance per worker.
"""

from __future__ import annotations

import contextlib
import math
import os
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from eqglb._workers import Executor
from eqglb.burdens import BURDENS, burden
from eqglb.certify import relative_gap
from eqglb.costs import Objective, RegionalCosts, objective_value
from eqglb.scenario import Dispatch, Scenario, SolveInfo
from eqglb.structured.colgen import Pricing, column_generation
from eqglb.structured.compact import CompactLP
from eqglb.structured.coupling import Block, Coupling

__all__ = ["BlockColumn", "StreamingOffline", "StreamingResult"]

#: A slot LP basis as CompactLP.get_basis returns it (status arrays; with windows, their
#: positions as a third array).
Basis = tuple[np.ndarray, ...]

#: Automatic block length: at least this many blocks, each at most MAX_AUTO_BLOCK slots.
MIN_AUTO_BLOCKS = 48
MAX_AUTO_BLOCK = 168
#: Most share of ``time_limit`` the warm start may take.
WARM_SHARE = 0.25
#: Default norm orders of the smooth stages solved before a q = inf problem
#: (:class:`StreamingOffline` ``homotopy``; docs/performance.md: on 30 days of the
#: year-latency tier at q = inf, 14 % after 300 s without, 0.72 % in 219 s with). Orders
#: above about 256 stall the interior-point master (a p = 512 stage did not converge in
#: 200 passes on a 4 x 12 x 3 x 48 instance).
HOMOTOPY = (8.0, 32.0, 128.0)
#: Default most share of ``time_limit`` for the smooth stages (``homotopy_share``): their
#: passes improve the q = inf upper bound more than q = inf passes do (full year at q = inf:
#: 1.43 % after 578 s with 0.8, 2.06 % after 576 s with 0.5; docs/performance.md).
HOMOTOPY_SHARE = 0.8
#: Relative gap to which the sampled problem of the warm start is solved: half the
#: caller's tolerance, but never looser than WARM_TOL_MAX nor tighter than WARM_TOL_MIN.
WARM_TOL_MIN = 1e-3
WARM_TOL_MAX = 5e-3

# ---------------------------------------------------------------------------- workers
_PROBLEM: CompactLP | None = None


def _init_worker(problem: CompactLP, worker: bool = True) -> None:
    """Keep the compact LPs where blocks are priced (one HiGHS per worker).

    ``worker``: this is a pool process (not the caller's own): limit it to one BLAS
    thread, as several workers share the CPUs.
    """
    global _PROBLEM
    _PROBLEM = problem
    _LANES.clear()
    if worker:
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            threadpool_limits(limits=1)


@dataclass(frozen=True)
class SlotPlan:
    """Prices per slot of one block: slot n is solved at ``table[choice[n]]`` and its
    class totals split as the LP did, or evenly where ``even[n]``.

    A plan carries the optimal mixture of a sampled problem (the warm start) to every
    slot the sample stands for (:func:`mixture_plan`).
    """

    table: np.ndarray  # (m, M) price vectors
    choice: np.ndarray  # (slots of block,) int index into table
    even: np.ndarray  # (slots of block,) bool


@dataclass
class BlockColumn:
    """One block's dispatch at one price vector (a master column).

    Attributes
    ----------
    block : int
    energy : float [USD]
    vectors : dict burden -> array
        The block's regional totals of every burden ((datacenter,) or (region,));
        ``column.carbon`` etc. read them.
    loads : float32 array (slot of block, datacenter, model) [requests/slot]
    bound : float
        Sum of the block's certified slot bounds at these prices [USD].
    gamma : array (M,)
        The block prices it was priced at.
    start : (col, row) int8 arrays or None
        HiGHS basis the block's first slot started from (None: cold), for replay.
    end : (col, row) int8 arrays
        Basis after the block's first slot (the next pass starts there).
    iterations : int
        Simplex iterations spent.
    split : {"price", "even"}
        How each class's model totals are split over its regions: as the slot LP did
        (best models to the regions of highest price), or evenly
        (:meth:`eqglb.structured.compact.CompactLP.even_split`).
    even : array (region,) or None
        The block's quality loss per region under the even split (``split="price"``
        columns only) [unit of S].
    plan : SlotPlan or None
        Per-slot prices (a transferred mixture, :class:`SlotPlan`) at which the block's
        slots were solved a second time, right after their solve at ``gamma``.
    planned : bool
        This column is the dispatch at the plan's prices (its ``bound`` is still the
        one at ``gamma``).
    companion : BlockColumn or None
        The planned column priced together with this one.
    """

    block: int
    energy: float
    vectors: dict[str, np.ndarray]
    loads: np.ndarray
    bound: float
    gamma: np.ndarray
    start: Basis | None
    end: Basis
    iterations: int
    split: str = "price"
    even: np.ndarray | None = None
    plan: SlotPlan | None = None
    planned: bool = False
    companion: BlockColumn | None = None

    def __getattr__(self, key: str) -> np.ndarray:
        vec = self.__dict__.get("vectors", {})
        if key in vec:
            return vec[key]
        raise AttributeError(f"'BlockColumn' object has no attribute {key!r}")

    def evenly_split(self) -> BlockColumn | None:
        """The same block dispatch with every class split evenly over its regions (a
        second master column), or None where that changes nothing."""
        if self.even is None or np.array_equal(self.even, self.vectors["social"]):
            return None
        vectors = {**self.vectors, "social": self.even}
        return BlockColumn(
            self.block,
            self.energy,
            vectors,
            self.loads,
            self.bound,
            self.gamma,
            self.start,
            self.end,
            0,
            "even",
            None,
            self.plan,
            self.planned,
        )


def _block_slots(block: int, length: int, n_time: int) -> range:
    return range(block * length, min(n_time, (block + 1) * length))


#: Further HiGHS instances of this process's slot LP, one per price vector of a plan.
_LANES: list[CompactLP] = []


class _PlanLanes:
    """A block's slot solves at ``gamma`` and, with a plan, at the plan's prices.

    Each price vector of the plan has its own HiGHS instance (a *lane*), started from
    the block's starting basis and warm-started from its own previous solve, so that
    neither sequence disturbs the other's warm start (one instance alternating between
    prices took about three times the simplex iterations). Pricing and replay go through
    this class, so both solve the same sequence.
    """

    def __init__(self, prob: CompactLP, plan: SlotPlan | None, start: Basis | None) -> None:
        self.prob, self.plan, self.start = prob, plan, start
        self.started: set[int] = set()
        prob.set_basis(start)

    def solve(self, t: int, n: int, gamma: np.ndarray) -> tuple[Any, Any]:
        """Slot ``t`` (position ``n`` of its block) at ``gamma`` and at its plan price."""
        r0 = self.prob.solve_slot(t, gamma)
        plan = self.plan
        if plan is None:
            return r0, None
        k = int(plan.choice[n])
        g1 = plan.table[k]
        if np.array_equal(g1, gamma):
            return r0, r0
        while len(_LANES) <= k:
            _LANES.append(self.prob.replica())
        lane = _LANES[k]
        if k not in self.started:
            lane.set_basis(self.start)
            self.started.add(k)
        return r0, lane.solve_slot(t, g1)


def price_block(
    task: tuple[int, int, np.ndarray, Basis | None, SlotPlan | None],
) -> BlockColumn:
    """Worker task: price block ``b`` (slots of length ``L``) at prices ``gamma``.

    With a ``plan``, every slot is solved a second time at the plan's prices; that
    dispatch becomes the column's ``companion`` (same bound and bases)."""
    b, length, gamma, start, plan = task
    prob = _PROBLEM
    assert prob is not None, "worker not initialised"
    T, N, J, K = prob.shape
    slots = _block_slots(b, length, T)
    lanes = _PlanLanes(prob, plan, start)
    acc = [_Accumulator(N, J, K, len(slots)) for _ in range(1 if plan is None else 2)]
    bound, iters = 0.0, 0
    end: Basis | None = None
    for n, t in enumerate(slots):
        r0, r1 = lanes.solve(t, n, gamma)
        if n == 0:
            end = prob.get_basis()
        bound += r0.bound
        iters += r0.iterations
        acc[0].add(n, r0, False)
        if plan is not None:
            if r1 is not r0:
                iters += r1.iterations
            acc[1].add(n, r1, bool(plan.even[n]))
    assert end is not None
    cols = [
        BlockColumn(
            b,
            a.energy,
            a.vectors,
            a.loads,
            bound,
            gamma,
            start,
            end,
            iters if i == 0 else 0,
            "price",
            a.even,
            plan,
            i == 1,
        )
        for i, a in enumerate(acc)
    ]
    if plan is not None:
        cols[0].companion = cols[1]
    return cols[0]


class _Accumulator:
    """A block's totals over its slots."""

    def __init__(self, N: int, J: int, K: int, n_slots: int) -> None:
        self.energy = 0.0
        self.vectors = _zero_vectors(N, J)
        self.even = np.zeros(J)
        self.loads = np.zeros((n_slots, N, K), dtype=np.float32)

    def add(self, n: int, r: Any, split_even: bool) -> None:
        self.energy += r.energy
        for name, v in r.vectors.items():
            self.vectors[name] += r.even if split_even and name == "social" else v
        self.even += r.even
        self.loads[n] = r.loads


def _one_blas_thread() -> Any:
    """Context limiting BLAS to one thread (pricing in this process: the small vector
    operations around each slot LP only lose time to BLAS threads), or a no-op."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn/scipy
        return contextlib.nullcontext()
    return threadpool_limits(limits=1)


def price_chain(
    task: tuple[list[int], int, np.ndarray, list[Basis | None], list[SlotPlan | None]],
) -> list[BlockColumn]:
    """Worker task: price consecutive blocks one after the other (:func:`price_block`);
    a block without a saved starting basis starts from the basis the previous block of
    the chain ended with (its last slot, the slot just before), and records it as its
    start so that a replay solves it the same way."""
    blocks, length, gamma, starts, plans = task
    prob = _PROBLEM
    assert prob is not None, "worker not initialised"
    out: list[BlockColumn] = []
    last: Basis | None = None
    for b, start, plan in zip(blocks, starts, plans, strict=True):
        first = start if start is not None else last
        out.append(price_block((b, length, gamma, first, plan)))
        last = prob.get_basis()
    return out


def _chains(n_blocks: int, workers: int, starts: list[Basis | None]) -> list[list[int]]:
    """Blocks grouped for :func:`price_chain`: one block per task when every block has
    a starting basis; else about 2 chains per worker of consecutive blocks (one cold
    start per chain instead of one per block)."""
    if all(x is not None for x in starts):
        return [[b] for b in range(n_blocks)]
    n = max(1, min(n_blocks, 2 * workers))
    edges = np.linspace(0, n_blocks, n + 1).round().astype(int)
    return [list(range(a, b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]


def _zero_vectors(N: int, J: int) -> dict[str, np.ndarray]:
    """Zero regional totals of every burden."""
    return {k: np.zeros(J if b.side == "region" else N) for k, b in BURDENS.items()}


#: Order in which a column's linear burden costs are summed: data-centre burdens first
#: (carbon, water, ...), then region burdens (the order of earlier releases, so sums are
#: bit-identical).
_SUM_ORDER = tuple(
    [k for k, b in BURDENS.items() if b.side == "datacenter"]
    + [k for k, b in BURDENS.items() if b.side == "region"]
)


def replay_block(
    task: tuple[int, int, np.ndarray, Basis | None, int, SlotPlan | None, bool],
) -> list[Any]:
    """Re-solve block ``b`` as :func:`price_block` did, returning compact slot solutions
    up to slot ``stop`` (exclusive; absolute index): those at the plan's prices where
    ``planned``, else those at ``gamma``."""
    b, length, gamma, start, stop, plan, planned = task
    prob = _PROBLEM
    assert prob is not None, "worker not initialised"
    lanes = _PlanLanes(prob, plan, start)
    out = []
    for n, t in enumerate(_block_slots(b, length, prob.shape[0])):
        if t >= stop:
            break
        r0, r1 = lanes.solve(t, n, gamma)
        out.append(r1 if planned else r0)
    return out


class _Executor(Executor):
    """The block pricing workers: :class:`eqglb._workers.Executor` (serial, process or
    ray, the one executor of eqglb) with the compact LPs held in every worker."""

    def __init__(self, problem: CompactLP, backend: str, workers: int, address: str | None) -> None:
        super().__init__(
            backend,
            workers,
            initializer=_init_worker,
            initargs=(problem,),
            local_initargs=(problem, False),
            address=address,
            inline_single=True,
            shutdown_ray=False,  # a local Ray instance is kept for later solves
        )


def _split_y(prob: CompactLP, col: BlockColumn, sol: Any, t: int, n: int) -> np.ndarray:
    """Compact y of a replayed slot ``t`` (position ``n`` in its block) under the
    column's split rule."""
    plan_even = col.planned and col.plan is not None and bool(col.plan.even[n])
    even = col.split == "even" or plan_even
    return prob.even_split(sol.z, prob.demand[t]) if even else sol.y


@dataclass(frozen=True)
class _SampledMixture:
    """The warm start's optimal columns: sampled slot ``s`` stands for slots
    ``s * stride .. (s + 1) * stride - 1`` (the last one for the rest)."""

    stride: int
    n_samples: int
    columns: list[tuple[int, np.ndarray, float, bool]]  # (sample, prices, weight, even)


#: Golden-ratio offsets of the systematic sampling in :func:`mixture_plan`.
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def mixture_plan(
    mix: _SampledMixture, n_time: int, length: int, n_blocks: int
) -> list[SlotPlan | None]:
    """Per-slot prices carrying the sampled problem's optimal mixture to every slot.

    The slots a sampled slot stands for are given the prices of its columns in
    proportion to the columns' weights, by systematic sampling (slot m of a stretch of
    L slots takes the column where the cumulative weight passes ``(m + phi) / L``, with
    a golden-ratio offset ``phi`` per stretch), and the split rule of that column.
    Deterministic. Blocks none of whose slots has a sampled column get None.
    """
    table: list[np.ndarray] = []
    index: dict[bytes, int] = {}
    per: dict[int, list[tuple[int, float, bool]]] = {}
    for s, g, weight, split_even in mix.columns:
        if weight <= 0:
            continue
        key = np.ascontiguousarray(g).tobytes()
        if key not in index:
            index[key] = len(table)
            table.append(np.asarray(g, dtype=float))
        per.setdefault(int(s), []).append((index[key], float(weight), split_even))
    if not table:
        return [None] * n_blocks
    tab = np.vstack(table)
    choice = np.full(n_time, -1, dtype=np.int32)
    even = np.zeros(n_time, dtype=bool)
    for s, cols in per.items():
        lo = s * mix.stride
        hi = n_time if s == mix.n_samples - 1 else min(n_time, lo + mix.stride)
        if hi <= lo:
            continue
        w = np.array([c[1] for c in cols])
        cdf = np.cumsum(w) / w.sum()
        u = (np.arange(hi - lo) + (s * _GOLDEN) % 1.0) / (hi - lo)
        pick = np.minimum(np.searchsorted(cdf, u, side="right"), len(cols) - 1)
        choice[lo:hi] = np.array([cols[i][0] for i in pick])
        even[lo:hi] = np.array([cols[i][2] for i in pick])
    plans: list[SlotPlan | None] = []
    for b in range(n_blocks):
        sl = _block_slots(b, length, n_time)
        c = choice[sl.start : sl.stop]
        if np.any(c < 0):
            plans.append(None)
            continue
        used = np.unique(c)
        plans.append(
            SlotPlan(
                tab[used],
                np.searchsorted(used, c).astype(np.int32),
                even[sl.start : sl.stop].copy(),
            )
        )
    return plans


# ---------------------------------------------------------------------------- master pool
class _BlockPool:
    """Block columns in the shape :func:`solve_master` reads (``slot`` = block)."""

    def __init__(
        self,
        n_blocks: int,
        terms_blocks: list[tuple[str, float, float, int]],
        linear: dict[str, float],
        env: dict[str, float],
    ) -> None:
        self.T = n_blocks
        self.blocks = terms_blocks
        self.linear = linear
        self.env = env
        self.M = int(sum(b[3] for b in terms_blocks))
        self.cols: list[BlockColumn] = []
        self.slot = np.zeros(0, dtype=np.intp)
        self.f = np.zeros(0)
        self._a = np.zeros((0, self.M))
        self.last_used = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.cols)

    @property
    def a(self) -> sp.csr_matrix:
        return sp.csr_matrix(self._a)

    def summarise(self, c: BlockColumn) -> tuple[float, np.ndarray]:
        """Linear cost f [USD] and stacked coupling vector a (M,) of a column."""
        lin = self.linear
        f = c.energy
        for name in _SUM_ORDER:
            if name in ("carbon", "water", "social") or lin[name]:
                f = f + lin[name] * c.vectors[name].sum()
        parts = []
        for name, *_ in self.blocks:
            if name == "environment":
                parts.append(sum(mu * c.vectors[k] for k, mu in self.env.items()))
            else:
                parts.append(c.vectors[name])
        return float(f), (np.concatenate(parts) if parts else np.zeros(0))

    def add_picked(self, pricing: Any, pick: np.ndarray, iteration: int) -> None:
        """Add the picked block columns of a :class:`eqglb.structured.colgen.Pricing`
        (its ``f`` and ``a`` are the columns' :meth:`summarise`)."""
        if pick.size == 0:
            return
        self.cols.extend(pricing.payload[i] for i in pick)
        self.slot = np.concatenate([self.slot, pricing.group[pick]]).astype(np.intp)
        self.f = np.concatenate([self.f, pricing.f[pick]])
        self._a = np.vstack([self._a, np.asarray(pricing.a)[pick].reshape(pick.size, -1)])
        self.last_used = np.concatenate([self.last_used, np.full(pick.size, iteration)])

    def as_pricing(self, lower: float) -> Pricing:
        """Every column of the pool as one pricing pass with bound ``lower`` [USD] (the
        seed of the next stage of a homotopy; the pool's arrays are never changed in
        place, so they are shared, not copied)."""
        return Pricing(lower, self.f, self._a, self.slot, self.cols)

    def snapshot(self, lam: np.ndarray) -> list[tuple[BlockColumn, float]]:
        """The columns with positive weight and their weights."""
        return [(self.cols[i], float(lam[i])) for i in np.flatnonzero(lam > 0)]

    def keep(self, sel: np.ndarray) -> None:
        idx = np.flatnonzero(sel) if sel.dtype == bool else sel
        self.cols = [self.cols[i] for i in idx]
        self.slot, self.f, self._a = self.slot[idx], self.f[idx], self._a[idx]
        self.last_used = self.last_used[idx]


# ---------------------------------------------------------------------------- result
@dataclass
class StreamingResult:
    """Outcome of :meth:`StreamingOffline.solve` (no full dispatch held in memory).

    Attributes
    ----------
    objective : float
        Equitable objective of the returned dispatch [USD] (recomputed from its costs).
    dual_bound : float
        Certified lower bound on the optimum [USD].
    gap : float
        ``(objective - dual_bound) / max(1, |objective|)`` [-].
    status : str
        ``"optimal"`` (gap <= tol) or ``"feasible"`` (stopped by a limit).
    costs : RegionalCosts
        Energy cost [USD], carbon and water per data centre [kg CO2, L], quality loss per
        region [unit of S].
    loads : float32 array (time, datacenter, model)
        Requests served per slot at each data centre by each model [requests/slot].
    iterations : int
    info : dict
        Timings [s], pricing passes, columns, simplex iterations, block length, workers.
    """

    objective: float
    dual_bound: float
    gap: float
    status: str
    costs: RegionalCosts
    loads: np.ndarray
    iterations: int
    info: dict[str, Any]
    _solver: StreamingOffline = field(repr=False, default=None)  # type: ignore[assignment]
    _problem: CompactLP = field(repr=False, default=None)  # type: ignore[assignment]
    _columns: list[tuple[BlockColumn, float]] = field(repr=False, default_factory=list)

    def slot_dispatch(self, t: int) -> np.ndarray:
        """Full dispatch (datacenter, region, model) of slot ``t`` [requests/slot].

        Re-solves the slot's block at the prices of each column with positive weight,
        from the stored starting basis, and combines the slot solutions with the weights.
        """
        prob = self._problem
        T, N, J, K = prob.shape
        if not 0 <= t < T:
            raise IndexError(f"slot {t} outside 0..{T - 1}")
        length = int(self.info["block_slots"])
        b = t // length
        _init_worker(prob, worker=False)
        y = np.zeros((N, J, K))
        for col, w in self._columns:
            if col.block != b:
                continue
            sols = replay_block((b, length, col.gamma, col.start, t + 1, col.plan, col.planned))
            y += w * prob.expand(_split_y(prob, col, sols[-1], t, t - b * length), sols[-1].z)
        return y

    def dispatch(self) -> np.ndarray:
        """Full dispatch (time, datacenter, region, model) [requests/slot]; small sizes only."""
        prob = self._problem
        T, N, J, K = prob.shape
        if T * N * J * K > 5e8:
            raise MemoryError(
                f"a full dispatch of {T}x{N}x{J}x{K} does not fit in memory; "
                "use slot_dispatch(t) per slot"
            )
        length = int(self.info["block_slots"])
        _init_worker(prob, worker=False)
        y = np.zeros((T, N, J, K))
        for col, w in self._columns:
            sols = replay_block((col.block, length, col.gamma, col.start, T, col.plan, col.planned))
            for n, t in enumerate(_block_slots(col.block, length, T)):
                y[t] += w * prob.expand(_split_y(prob, col, sols[n], t, n), sols[n].z)
        return y


# ---------------------------------------------------------------------------- solver
@dataclass
class StreamingOffline:
    """Offline equitable optimum of very large scenarios with a certified gap.

    Parameters
    ----------
    objective : Objective
    tol : float
        Target relative certified gap [-] (the year benchmark asks for 0.01).
    block_slots : int or None
        Slots per block (master columns aggregate a block) [slots]. None: about T / 48,
        at most 168 (one week of hours): enough blocks for the master to mix, few
        enough columns to keep it small.
    workers : int or None
        Worker processes (or Ray workers); default the number of CPUs.
    backend : {"process", "serial", "ray"}
        Where blocks are priced. ``"ray"`` starts a local Ray instance unless ``address``
        names a running cluster.
    address : str or None
        Ray cluster address (``backend="ray"``).
    max_iter : int
        Most master iterations.
    time_limit : float or None
        Wall-clock limit [s]; the best dispatch so far is returned, flagged
        ``feasible``, with its certified gap. The warm start gets at most
        ``WARM_SHARE`` (a quarter) of it.
    smoothing : float
        Initial Wentges smoothing weight in [0, 1) (adapted as in Pessoa et al. 2018).
    max_age : int
        Columns unused for this many iterations leave the master.
    warm_start : bool
        Start from the prices of the same problem on a sample of slots.
    warm_sample : int
        Slots sampled for the warm start [slots].
    slot_form : {"auto", "compact", "reduced"}
        Slot LP solved per slot (:class:`eqglb.structured.compact.CompactLP`): the
        reduced form (no region rows; exact for a rank-one quality matrix, which eqglb's
        cost model always has) where it applies (``auto``), or the compact one.
    even_columns : bool
        Give the master, beside each block column, the same dispatch with every class's
        model totals split evenly over its regions (docs/performance.md: at q = inf the
        slot LP's own split is all or nothing between the regions of a class).
    transfer_mixture : bool
        With the warm start, where a term has q = inf: the first pass solves every slot
        at the sampled problem's prices (its bound, as always) and once more at the
        prices of one of the columns its sampled slot's optimal mixture uses, chosen in
        proportion to their weights (:func:`mixture_plan`). That second dispatch is a
        further master column per block, close to the optimum where the slot LPs'
        answers at any one price are all or nothing (q = inf). Costs about one more
        pass.
    homotopy : tuple of float
        Where a term has q = inf: norm orders ``p_1 < p_2 < ...`` (e.g. ``(8, 32)``) of
        smooth surrogate problems solved first, each from the previous one's prices and
        columns, before the q = inf problem itself (a continuation in the norm order).
        Stage ``p`` replaces every q = inf block by order ``p`` with its weight times
        ``size ** (-1/p)`` (:meth:`eqglb.structured.coupling.Block.surrogate`): never
        above the q = inf objective, so its certified bound is a valid q = inf bound,
        and its prices are feasible q = inf prices (Hölder). The warm start then samples
        the first stage, or every stage (``homotopy_horizon``). Default
        :data:`HOMOTOPY` = (8, 32, 128); empty: the q = inf problem directly.
    homotopy_horizon : int or None
        With the warm start: the sampled problem runs every stage of the homotopy and the
        horizon only the last ``homotopy_horizon`` of them, then q = inf (prices
        feasible at order p are feasible at larger orders only, so the horizon cannot go
        back to an earlier one). None: the sample runs the first stage and the horizon
        every stage.
    homotopy_tol : float
        Relative gap [-] to which each surrogate stage is solved (of its own problem).
    homotopy_share : float
        Most share of ``time_limit`` the surrogate stages take together (the q = inf
        stage always gets at least one master solve); default :data:`HOMOTOPY_SHARE`.
    homotopy_lift : bool
        The q = inf stage starts with a pass at the last surrogate stage's best prices
        scaled up onto the face ``sum g = w`` of every q = inf block's dual set
        (:meth:`eqglb.structured.coupling.Block.lift`). Surrogate prices sum to less
        than ``w`` unless uniform; regional totals are non-negative, so the bound there
        is at least as high (year-latency, 30 days: +0.47 %). Costs one pass.
    progress : callable or None
        Called with a dict whose ``event`` is ``"warm_start"`` (sampled problem started),
        ``"pricing"`` (after each block of a pricing pass: pass, done, blocks) or
        ``"iteration"`` (after each master solve: iteration, upper, lower [USD], gap [-],
        columns); every event has ``elapsed`` [s].
    name : str
        Policy name of the dispatch :meth:`plan` returns.
    """

    objective: Objective = field(default_factory=Objective)
    tol: float = 1e-6
    block_slots: int | None = None
    workers: int | None = None
    backend: str = "process"
    address: str | None = None
    max_iter: int = 200
    time_limit: float | None = None
    smoothing: float = 0.5
    max_age: int = 3
    warm_start: bool = True
    warm_sample: int = 120
    slot_form: str = "auto"
    even_columns: bool = True
    transfer_mixture: bool = True
    homotopy: tuple[float, ...] = HOMOTOPY
    homotopy_tol: float = 1e-3
    homotopy_share: float = HOMOTOPY_SHARE
    homotopy_horizon: int | None = 1
    homotopy_lift: bool = True
    progress: Callable[[dict[str, Any]], None] | None = None
    name: str = "streaming"
    #: internal (the warm start of a homotopy): solve only the surrogate stages
    surrogate_only: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        from eqglb.structured.solver import refuse_switching

        refuse_switching(self.objective, "streaming")
        orders = tuple(float(p) for p in self.homotopy)
        if any(not (math.isfinite(p) and p > 1.0) for p in orders) or any(
            b <= a for a, b in zip(orders, orders[1:], strict=False)
        ):
            raise ValueError(
                f"homotopy = {self.homotopy!r}; give increasing finite norm orders > 1, "
                "e.g. (8, 32)"
            )
        if self.homotopy_horizon is not None and self.homotopy_horizon < 0:
            raise ValueError(
                f"homotopy_horizon = {self.homotopy_horizon!r}; give a count >= 0 or None"
            )
        if not 0.0 < self.homotopy_share < 1.0:
            raise ValueError(f"homotopy_share = {self.homotopy_share!r}; give a share in (0, 1)")
        self.homotopy = orders

    def state(self) -> dict[str, Any]:
        return {
            "policy": "streaming",
            "tol": self.tol,
            "block_slots": self.block_slots,
            "backend": self.backend,
        }

    # ------------------------------------------------------------------ public
    def plan(self, sc: Scenario) -> Dispatch:
        """Certified dispatch of ``sc`` as a full :class:`Dispatch` (sizes that fit memory)."""
        res = self.solve(sc)
        y = res.dispatch()
        info = SolveInfo(
            status=res.status,
            solver="eqglb-streaming",
            solve_time=float(res.info["time"]),
            objective=res.objective,
            dual_bound=res.dual_bound,
            iterations=res.iterations,
            extra={"gap": res.gap, **{k: v for k, v in res.info.items() if k != "center"}},
        )
        return Dispatch(y, policy=self.name, info=info)

    def solve(self, sc: Scenario) -> StreamingResult:
        """Solve ``sc``; the result holds totals, loads and replayable columns."""
        t_start = _time.perf_counter()
        from eqglb.slo import refuse_budget

        refuse_budget(sc, "streaming")
        from eqglb.structured.solver import refuse_switching

        refuse_switching(self.objective, "streaming")
        obj = self.objective
        prob = CompactLP.of(sc, obj, form=self.slot_form)
        T = prob.shape[0]
        if self.block_slots is None:  # about 48 blocks or more, at most a week each
            length = max(1, min(MAX_AUTO_BLOCK, math.ceil(T / MIN_AUTO_BLOCKS)))
        else:
            length = max(1, min(int(self.block_slots), T))
        workers = int(self.workers or os.cpu_count() or 1)
        n_blocks = math.ceil(T / length)
        workers = max(1, min(workers, n_blocks))
        info: dict[str, Any] = {
            "block_slots": length,
            "blocks": n_blocks,
            "workers": workers,
            "backend": self.backend,
            "classes": prob.n_classes,
            "slot_form": prob.lp_form,
            "compact_columns": prob.n_col,
            "compact_rows": prob.n_row,
            "slot_lp_rows": prob.lp_size[0],
            "slot_lp_columns": prob.lp_size[1],
        }
        gamma0 = None
        plans: list[SlotPlan | None] | None = None
        warm = self.warm_start and bool(prob.terms.blocks) and T > 2 * self.warm_sample
        sampled_orders, stages = self._stages(prob, warm)
        if warm:
            t0 = _time.perf_counter()
            if self.progress is not None:
                self.progress(
                    {"event": "warm_start", "slots": self.warm_sample, "elapsed": t0 - t_start}
                )
            gamma0, sampled = self._sampled_prices(sc, info, sampled_orders)
            if self.transfer_mixture and any(math.isinf(b[2]) for b in prob.terms.blocks):
                plans = mixture_plan(sampled, T, length, n_blocks)
                info["mixture_blocks"] = sum(p is not None for p in plans)
            info["warm_start_time"] = _time.perf_counter() - t0
        ex = _Executor(prob, self.backend, workers, self.address)
        try:
            res = self._column_generation(
                prob, ex, length, n_blocks, workers, gamma0, plans, t_start, info, stages
            )
        finally:
            ex.close()
        res._problem = prob
        res._solver = self
        res.info["time"] = _time.perf_counter() - t_start
        return res

    # ------------------------------------------------------------------ internals
    def _stages(self, prob: CompactLP, warm: bool) -> tuple[tuple[float, ...], list[float | None]]:
        """The norm orders the warm start's sample runs, and the stages of the horizon:
        surrogate orders, then None for the problem itself (omitted when
        ``surrogate_only``); just ``[None]`` without a q = inf block."""
        orders = self.homotopy
        if not orders or not any(math.isinf(b[2]) for b in prob.terms.blocks):
            return orders, [None]
        if not warm or self.homotopy_horizon is None:  # the sample runs the first stage
            horizon, sampled = orders, orders[:1]
        else:  # the sample runs every stage, the horizon the last homotopy_horizon
            horizon, sampled = (
                orders[len(orders) - min(self.homotopy_horizon, len(orders)) :],
                orders,
            )
        tail: list[float | None] = [] if self.surrogate_only else [None]
        return sampled, [*horizon, *tail]

    def _sampled_prices(
        self, sc: Scenario, info: dict[str, Any], orders: tuple[float, ...]
    ) -> tuple[np.ndarray, _SampledMixture]:
        """Prices of the same problem on every k-th slot, each standing for k slots, and
        that problem's optimal mixture of columns (:func:`mixture_plan`)."""
        T = sc.n_time
        k = max(1, T // self.warm_sample)
        sample = np.arange(0, T, k)
        w = T / sample.size
        sub = sc.slice_time(0, sample.size).replace(
            demand=np.asarray(sc.demand)[sample] * w,
            price=np.asarray(sc.price)[sample],
            carbon_intensity=np.asarray(sc.carbon_intensity)[sample],
            wue=np.asarray(sc.wue)[sample],
            ewif=np.asarray(sc.ewif)[sample],
            health_cost=np.asarray(sc.health_cost)[sample],
            pue=np.asarray(sc.pue)[sample],
            capacity=np.asarray(sc.capacity)[sample] * w,
            validate_feasibility=False,
        )
        inner_tol = min(WARM_TOL_MAX, max(WARM_TOL_MIN, 0.5 * self.tol))
        info["warm_start_tol"] = inner_tol
        inner = StreamingOffline(  # priced where the year is priced (workers)
            objective=self.objective,
            tol=inner_tol,
            block_slots=1,
            backend=self.backend,
            workers=self.workers,
            address=self.address,
            max_iter=60,
            # at most a quarter of the caller's limit (q = inf stalls on some tiers)
            time_limit=None if self.time_limit is None else WARM_SHARE * self.time_limit,
            warm_start=False,
            smoothing=self.smoothing,
            max_age=self.max_age,
            slot_form=self.slot_form,
            even_columns=self.even_columns,
            # a homotopy's stages are smooth, so the sample converges
            homotopy=orders,
            homotopy_tol=inner_tol,
            surrogate_only=bool(orders),
        )
        res = inner.solve(sub)
        info["warm_start_iterations"] = res.iterations
        info["warm_start_passes"] = res.info["passes"]
        info["warm_start_pricing_time"] = res.info["pricing_time"]
        info["warm_start_master_time"] = res.info["master_time"]
        info["warm_start_simplex_iterations"] = res.info["simplex_iterations"]
        info["warm_start_slots"] = int(sample.size)
        info["warm_start_gap"] = res.gap
        if "homotopy" in res.info:
            info["warm_start_homotopy"] = res.info["homotopy"]
        mix = _SampledMixture(
            k, int(sample.size), [(c.block, c.gamma, w, c.split == "even") for c, w in res._columns]
        )
        return np.asarray(res.info["center"]), mix

    def _column_generation(
        self,
        prob: CompactLP,
        ex: _Executor,
        length: int,
        n_blocks: int,
        workers: int,
        gamma0: np.ndarray | None,
        plans: list[SlotPlan | None] | None,
        t_start: float,
        info: dict[str, Any],
        stages: list[float | None],
    ) -> StreamingResult:
        """The loop of :mod:`eqglb.structured.colgen` over block columns, once per stage
        (:meth:`_stages`); the first pass at the ``plans`` (a transferred mixture) where
        given."""
        terms = prob.terms
        cp = Coupling(
            np.zeros((1, 0)),
            tuple(
                Block(name, w, q, np.zeros(0, dtype=np.intp), size, np.zeros((1, 0)))
                for name, w, q, size in terms.blocks
            ),
        )
        bases: list[Basis | None] = [None] * n_blocks
        stats: dict[str, Any] = {
            "pricing_time": 0.0,
            "master_time": 0.0,
            "passes": 0,
            "simplex_iterations": 0,
        }
        # even splits change only the regional quality losses: worth a column only when
        # those are priced in a block
        split_evenly = self.even_columns and any(
            burden(b[0]).side == "region" for b in terms.blocks if b[0] != "environment"
        )

        def price(gamma: list[np.ndarray]) -> Pricing:
            t0 = _time.perf_counter()
            g = np.concatenate(gamma) if gamma else np.zeros(0)
            chains = _chains(n_blocks, workers, bases)
            # the first pass solves the transferred mixture (bounds at g all the same)
            plan = plans if plans is not None and stats["passes"] == 0 else [None] * n_blocks
            tasks = [
                (ch, length, g, [bases[b] for b in ch], [plan[b] for b in ch]) for ch in chains
            ]
            cols: list[BlockColumn] = []
            serial = ex.backend == "serial"
            with _one_blas_thread() if serial else contextlib.nullcontext():
                done = list(ex.map(price_chain, tasks)) if serial else ex.map(price_chain, tasks)
            for c in (c for chain in done for c in chain):
                cols.append(c)
                bases[c.block] = c.end
                stats["simplex_iterations"] += c.iterations
                if self.progress is not None:
                    self.progress(
                        {
                            "event": "pricing",
                            "pass": stats["passes"] + 1,
                            "done": len(cols),
                            "blocks": n_blocks,
                            "elapsed": _time.perf_counter() - t_start,
                        }
                    )
            took = _time.perf_counter() - t0
            stats["pricing_time"] += took
            stats["passes"] += 1
            cols.sort(key=lambda c: c.block)
            lower = float(sum(c.bound for c in cols))
            cols += [c.companion for c in cols if c.companion is not None]
            if split_evenly:
                cols += [e for e in (c.evenly_split() for c in cols) if e is not None]
            fa = [pool.summarise(c) for c in cols]
            return Pricing(
                lower,
                np.array([x[0] for x in fa]),
                np.array([x[1] for x in fa]).reshape(len(cols), cp.size),
                np.array([c.block for c in cols], dtype=np.intp),
                cols,
                # a planned pass solved every slot twice: a plain one takes about half
                seconds=0.5 * took if any(pl is not None for pl in plan) else took,
            )

        if not terms.blocks:  # separable: one pass is the whole problem
            pool = _BlockPool(n_blocks, terms.blocks, terms.linear, terms.env)
            pr = price([])
            return self._result(
                prob,
                [(c, 1.0) for c in pr.payload],
                pr.lower,
                0,
                "optimal",
                stats,
                info,
                np.zeros(0),
            )

        def on_iteration(it: int, upper: float, lower: float, gap: float, cols: int) -> None:
            if self.progress is not None:
                self.progress(
                    {
                        "event": "iteration",
                        "iteration": it,
                        "upper": upper,
                        "lower": lower,
                        "gap": gap,
                        "columns": cols,
                        "elapsed": _time.perf_counter() - t_start,
                    }
                )

        seed: Pricing | None = None
        start = None if gamma0 is None else cp.split(gamma0)
        n_smooth = sum(p is not None for p in stages)
        share = 1.0 if self.surrogate_only else self.homotopy_share
        history: list[dict[str, Any]] = []
        iterations = 0
        for n, p in enumerate(stages):
            t0 = _time.perf_counter()
            passes0 = stats["passes"]
            cps = cp if p is None else cp.surrogate(p)
            pool = _BlockPool(
                n_blocks,
                [(b.name, b.weight, b.q, b.size) for b in cps.blocks],
                terms.linear,
                terms.env,
            )
            limit = self.time_limit
            if p is not None and limit is not None:  # the smooth stages share a part
                limit = t0 - t_start + (share * limit - (t0 - t_start)) / max(1, n_smooth - n)
            res = column_generation(
                cps,
                pool,
                price,
                gamma0=start,
                tol=self.tol if p is None else self.homotopy_tol,
                max_iter=int(self.max_iter),
                smoothing=self.smoothing,
                adaptive=True,
                max_age=self.max_age,
                master="auto",
                time_limit=limit,
                t_start=t_start,
                stats=stats,
                on_iteration=on_iteration,
                seed=seed,
                lift=self.homotopy_lift and p is None,
            )
            iterations += res["iterations"]
            history.append(
                {
                    "q": math.inf if p is None else p,
                    "upper": res["upper"],
                    "lower": res["lower"],
                    "gap": relative_gap(res["upper"], res["lower"]),
                    "iterations": res["iterations"],
                    "passes": stats["passes"] - passes0,
                    "time": _time.perf_counter() - t0,
                }
            )
            # the next stage starts where this one ended: its prices (feasible there),
            # its bound (valid there) and every column it kept
            start = res["center"]
            seed = pool.as_pricing(res["lower"])
        if len(stages) > 1 or stages[0] is not None:
            info["homotopy"] = history
        return self._result(
            prob,
            res["snapshot"],
            res["lower"],
            iterations,
            res["status"],
            stats,
            info,
            np.concatenate(res["center"]),
            upper=res["upper"] if stages[-1] is not None else None,
        )

    def _result(
        self,
        prob: CompactLP,
        columns: list[tuple[BlockColumn, float]],
        lower: float,
        iterations: int,
        status: str,
        stats: dict[str, Any],
        info: dict[str, Any],
        center: np.ndarray,
        upper: float | None = None,
    ) -> StreamingResult:
        T, N, J, K = prob.shape
        length = int(info["block_slots"])
        energy = 0.0
        vectors = _zero_vectors(N, J)
        loads = np.zeros((T, N, K), dtype=np.float32)
        for c, w in columns:
            energy += w * c.energy
            for name, v in c.vectors.items():
                vectors[name] += w * v
            sl = _block_slots(c.block, length, T)
            loads[sl.start : sl.stop] += np.float32(w) * c.loads
        costs = RegionalCosts(energy, vectors)
        # a surrogate-only solve (a homotopy's warm start) reports its own problem's value
        value = objective_value(self.objective, costs) if upper is None else float(upper)
        gap = relative_gap(value, lower)
        if status == "optimal" and gap > self.tol:
            status = "feasible"
        info = {
            **info,
            **stats,
            "columns_used": len(columns),
            "center": center,
            "gap_abs": value - lower,
        }
        return StreamingResult(
            value, lower, gap, status, costs, loads, iterations, info, _columns=list(columns)
        )
