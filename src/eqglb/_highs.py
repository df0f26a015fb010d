"""Small helpers around highspy shared by the solvers that drive HiGHS directly."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["basis_status", "highs_lp"]


def highs_lp(
    A: Any,
    cost: np.ndarray,
    row_lower: np.ndarray,
    row_upper: np.ndarray,
    *,
    col_lower: np.ndarray | None = None,
    col_upper: np.ndarray | None = None,
    **options: Any,
) -> Any:
    """A quiet HiGHS instance holding ``min cost . x`` s.t. ``row_lower <= A x <= row_upper``.

    ``A`` is any scipy sparse matrix (rows, columns); columns default to ``x >= 0``;
    ``options`` are HiGHS options (e.g. ``presolve="off"``). The model is passed, not run.
    """
    import highspy

    from eqglb._workers import silence_highs_banner

    silence_highs_banner()  # the first instance of a process prints a banner to stdout
    A = sp.csc_matrix(A)
    m, n = A.shape
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, m
    lp.col_cost_ = np.asarray(cost, dtype=float)
    lp.col_lower_ = np.zeros(n) if col_lower is None else np.asarray(col_lower, dtype=float)
    lp.col_upper_ = np.full(n, np.inf) if col_upper is None else np.asarray(col_upper, dtype=float)
    lp.row_lower_ = np.asarray(row_lower, dtype=float)
    lp.row_upper_ = np.asarray(row_upper, dtype=float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = A.indptr
    lp.a_matrix_.index_ = A.indices
    lp.a_matrix_.value_ = A.data
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    for key, value in options.items():
        h.setOptionValue(key, value)
    h.passModel(lp)
    return h


def basis_status(h: Any) -> tuple[np.ndarray, np.ndarray]:
    """The current basis of HiGHS instance ``h`` as int8 status arrays (columns, rows)."""
    b = h.getBasis()
    return (
        np.array(list(map(int, b.col_status)), dtype=np.int8),
        np.array(list(map(int, b.row_status)), dtype=np.int8),
    )
