"""One JSON conversion and one JSON file writer for every output (metrics, summaries,
sweep points, states, service responses).

NaN/inf policy
--------------
JSON has no NaN or infinity. :func:`json_ready` maps them by ``nonfinite``: ``"keep"``
(left as floats: ``json.dumps`` then writes the non-standard ``NaN``/``Infinity``
tokens, which :func:`write_json` refuses), ``"none"`` (``null``), or ``"string"``
(``null`` for NaN, ``"inf"``/``"-inf"`` for infinities, readable back with ``float``).
:func:`write_json` uses ``"string"`` by default and always writes standard JSON
(``allow_nan=False``): a non-finite number that is not mapped is an error, never a file
other tools cannot read.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

__all__ = ["NonFinite", "dumps", "json_ready", "write_json"]

#: What becomes of NaN and +-inf (module docstring).
NonFinite = Literal["keep", "none", "string"]


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
    if type(x).__module__ == "numpy":  # arrays and scalars, without importing numpy here
        x = x.tolist() if getattr(x, "ndim", 0) else x.item()
        if isinstance(x, list):
            return json_ready(x, nonfinite)
    if isinstance(x, float) and not math.isfinite(x) and nonfinite != "keep":
        if nonfinite == "string" and not math.isnan(x):
            return "inf" if x > 0 else "-inf"
        return None
    return x


def dumps(
    obj: Any, *, nonfinite: NonFinite = "string", indent: int | None = 2, **kwargs: Any
) -> str:
    """Standard JSON text of ``obj`` (:func:`json_ready` with ``nonfinite``, then
    ``json.dumps(..., allow_nan=False)``); ``kwargs`` go to :func:`json.dumps`."""
    return json.dumps(json_ready(obj, nonfinite), indent=indent, allow_nan=False, **kwargs)


def write_json(
    path: str | Path,
    obj: Any,
    *,
    nonfinite: NonFinite = "string",
    indent: int | None = 2,
    fsync: bool = False,
    **kwargs: Any,
) -> Path:
    """Write ``obj`` as standard JSON to ``path`` atomically; return the path.

    The text (:func:`dumps`, ending with a newline) goes to a temporary file in the same
    folder, which is then renamed over ``path`` (``os.replace``): a reader sees the old
    file or the whole new one, never a part. With ``fsync`` the data reach the disk before the rename (for
    stores that must survive a power cut). ``kwargs`` go to :func:`json.dumps` (e.g.
    ``sort_keys=True``).

    Raises
    ------
    ValueError
        ``obj`` holds NaN or inf and ``nonfinite="keep"``.
    OSError
        The folder does not exist or is not writable.
    """
    path = Path(path)
    text = dumps(obj, nonfinite=nonfinite, indent=indent, **kwargs)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
