"""One JSON-ready conversion for every writer (states, metrics, service responses, sweeps)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["json_ready"]


def json_ready(x: Any, nonfinite: str = "keep") -> Any:
    """Copy of ``x`` that ``json.dumps`` accepts: str keys, lists, Python scalars.

    Parameters
    ----------
    nonfinite : {"keep", "none", "string"}
        What becomes of NaN and +-inf floats: left as they are, ``None``, or ``None`` for
        NaN and ``"inf"``/``"-inf"`` for infinities (readable back as floats).
    """
    if isinstance(x, Mapping):
        return {str(k): json_ready(v, nonfinite) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(v, nonfinite) for v in x]
    if isinstance(x, np.ndarray):
        return json_ready(x.tolist(), nonfinite)
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x) and nonfinite != "keep":
        if nonfinite == "string" and not math.isnan(x):
            return "inf" if x > 0 else "-inf"
        return None
    return x
