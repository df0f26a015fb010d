"""Durable state of online policies: JSON save and load, and rebuilding a policy from it.

A policy's :meth:`state` is a JSON-ready dict::

    {"format": "eqglb.online.state", "version": 1,
     "policy": "OnlineDMD" | "RecedingHorizon", "name": ..., "config": {...},
     "t": next slot to decide, "scenario": {fingerprint}, ...policy data...}

Floats are written with ``repr`` precision by :mod:`json`, so a state read back holds the
very same numbers: a run resumed from it repeats the decisions of an uninterrupted run
exactly (tested). NaN and infinities are refused (``allow_nan=False``); policies keep
their states finite.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eqglb._json import write_json
from eqglb.scenario import ScenarioError

__all__ = [
    "STATE_FORMAT",
    "STATE_VERSION",
    "base_state",
    "check_fingerprint",
    "fingerprint",
    "load_state",
    "objective_from_config",
    "policy_kwargs",
    "objective_to_config",
    "restore_base",
    "restore_policy",
    "save_state",
]

STATE_FORMAT = "eqglb.online.state"
STATE_VERSION = 1


def base_state(kind: str, policy: Any, counters: Mapping[str, int]) -> dict[str, Any]:
    """The fields every online policy's state has (module docstring), for ``policy``.

    ``kind`` is the policy class name; ``policy`` has ``name``, ``config()``,
    ``slots_done``, ``_fp`` (scenario fingerprint) and ``cumulative`` (name -> array).
    """
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "policy": kind,
        "name": policy.name,
        "config": policy.config(),
        "t": policy.slots_done,
        "scenario": policy._fp,
        "cumulative": {k: v.tolist() for k, v in policy.cumulative.items()},
        "counters": dict(counters),
    }


def restore_base(kind: str, policy: Any, state: Mapping[str, Any]) -> dict[str, int]:
    """Check ``state`` is a ``kind`` state, reset ``policy`` and restore the common fields.

    Returns the counters, for the policy to keep where it keeps them.
    """
    import numpy as np

    if state.get("policy") != kind:
        raise ScenarioError(
            f"policy state: field 'policy' is {state.get('policy')!r}; this is a {kind} policy"
        )
    policy.reset()
    policy.slots_done = int(state["t"])
    policy._fp = state.get("scenario")
    policy.cumulative = {
        k: np.asarray(v, dtype=float) for k, v in state.get("cumulative", {}).items()
    }
    return {k: int(v) for k, v in state.get("counters", {}).items()}


def save_state(state: Any, path: str | Path) -> Path:
    """Write a policy's state (or a policy, whose ``state()`` is taken) to JSON.

    Parameters
    ----------
    state : dict or policy
    path : str or Path
        Destination file (``.json``); parent folders are created.

    Returns
    -------
    Path of the written file.
    """
    if not isinstance(state, dict):
        state = state.state()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json(path, state, nonfinite="keep", indent=1)  # atomic: no torn state


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a state written by :func:`save_state`.

    Raises
    ------
    ScenarioError
        If the file is not JSON or not an eqglb online-policy state, naming the file and
        what to do.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(
            f"{path}: no such state file; save one with eqglb.online.save_state(policy, path)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(
            f"{path}: not valid JSON ({exc}); give a file written by eqglb.online.save_state"
        ) from exc
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise ScenarioError(
            f"{path}: field 'format' is {data.get('format') if isinstance(data, dict) else None!r}, "
            f"not {STATE_FORMAT!r}; give a file written by eqglb.online.save_state"
        )
    if data.get("version") != STATE_VERSION:
        raise ScenarioError(
            f"{path}: field 'version' is {data.get('version')!r}; this eqglb "
            f"reads version {STATE_VERSION}"
        )
    return data


def objective_to_config(obj: Any) -> dict[str, Any]:
    """Objective -> JSON-ready dict (:meth:`eqglb.costs.Objective.to_config`)."""
    return dict(obj.to_config())


def objective_from_config(cfg: dict[str, Any]) -> Any:
    from eqglb.costs import Objective

    return Objective.from_config(cfg)


def policy_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor keywords of an online policy from its saved ``config()``."""
    kw = dict(cfg)
    kw["objective"] = objective_from_config(kw["objective"])
    return kw


def fingerprint(view: Any) -> dict[str, Any]:
    """What identifies the scenario a state belongs to (names, horizon, first slot)."""
    return {
        "n_time": int(view.n_time),
        "datacenters": list(view.datacenters),
        "regions": list(view.regions),
        "models": list(view.models),
        "time0": view.time[0].isoformat(),
    }


def check_fingerprint(saved: dict[str, Any] | None, view: Any) -> None:
    """Raise ScenarioError when a saved state belongs to another scenario."""
    if saved is None:
        return
    now = fingerprint(view)
    for key, value in now.items():
        if saved.get(key) != value:
            raise ScenarioError(
                f"policy state: field 'scenario.{key}' is {saved.get(key)!r} but the scenario "
                f"being simulated has {value!r}; resume a state only on the scenario it was "
                "saved from"
            )


def restore_policy(state: dict[str, Any], **overrides: Any) -> Any:
    """A new policy built from ``state['config']`` with the state loaded into it.

    ``overrides`` replace configuration entries, e.g. ``forecaster=my_forecaster`` for a
    receding-horizon policy whose forecaster is a user object (stored by name only).
    """
    from eqglb.registry import state_class

    kind = state.get("policy")
    try:
        cls: Any = state_class(str(kind))
    except KeyError as exc:
        raise ScenarioError(f"policy state: field 'policy' is {exc.args[0]}") from None
    policy = cls.from_config({**state["config"], **overrides})
    policy.load_state(state)
    return policy
