"""Every exception class of eqglb, in one hierarchy.

::

    EqglbError                         base of every error eqglb raises on purpose
    +-- InputError (ValueError)        bad input the user can fix; the CLI exits with 2
    |   +-- ScenarioError              an invalid scenario value (field, coordinate, fix)
    |   |   +-- InfeasibleDemandError  a slot's demand exceeds capacity and routes
    |   |   +-- ScenarioFormatError    a malformed scenario folder (file, line, column)
    |   |   +-- DataFormatError        a malformed data file of a loader (path, line, column)
    |   |   +-- UnitError              an unknown unit label or an impossible conversion
    |   |   +-- PlausibilityError      a value outside its physical range (strict mode)
    |   +-- ConfigError                an invalid option or configuration, naming it
    |       +-- CLIError               bad command-line input
    |       +-- SweepSpecError         an invalid sweep specification (file, field, fix)
    |       +-- ServiceConfigError     an invalid service configuration
    |       +-- ReproductionError      a reproduction that cannot run (data folder, solve)
    +-- SolveError (RuntimeError)      a solver failed or found no solution (``info``)
    +-- PolicyError (RuntimeError)     a policy returned a malformed or infeasible decision
    +-- CausalityError (IndexError)    a policy asked for data of a later slot
    +-- ServiceError (RuntimeError)    the service cannot run
    |   +-- StoreError (ValueError)    its database cannot be used
    |   |   +-- StoreCorruptError      a row or file does not match its checksum
    |   +-- HAProxyRuntimeError        HAProxy's runtime API refused a command
    +-- SignalError (RuntimeError)     a signal provider failed (eqglb.signals)

Each class also derives from the built-in exception callers caught before this module
existed (``ValueError`` for bad input, ``RuntimeError`` for failures, ``IndexError`` for
causality), so ``except ValueError`` keeps working. Catch :class:`EqglbError` for any of
them, :class:`InputError` for what the user can fix.

The classes with data (``ScenarioError``: field, coordinate, fix; ``SolveError``: info)
are defined where that data is built; the others are defined here. Every name is also
importable from its old module (``eqglb.scenario.ScenarioError``, ...).

Re-based on their natural parent (they used to derive from ``ScenarioError`` although
no scenario is at fault): ``SweepSpecError``, ``ServiceConfigError``,
``ReproductionError`` (now :class:`ConfigError`), ``StoreError`` (now
:class:`ServiceError`). Each still derives from ``ValueError`` as before
(``ConfigError`` is an ``InputError``; ``StoreError`` names ``ValueError`` itself).

:class:`SignalError` keeps its definition (with its provider, endpoint and status
attributes) in :mod:`eqglb.signals`, derived from :class:`EqglbError`; the loaders'
``DataFormatError``, the scenario format's ``ScenarioFormatError`` and the units'
``UnitError``/``PlausibilityError`` keep theirs, derived from :class:`ScenarioError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "CLIError",
    "CausalityError",
    "ConfigError",
    "EqglbError",
    "HAProxyRuntimeError",
    "InputError",
    "PolicyError",
    "ReproductionError",
    "ScenarioError",
    "ServiceConfigError",
    "ServiceError",
    "SolveError",
    "StoreCorruptError",
    "StoreError",
    "SweepSpecError",
]


class EqglbError(Exception):
    """Base of every error eqglb raises on purpose."""


class InputError(EqglbError, ValueError):
    """Bad input the user can fix (the message names it and says how); CLI exit code 2."""


class ScenarioError(InputError):
    """An input is invalid; the message names the variable, the coordinate and the fix.

    The same facts are kept as data, so that a reader (e.g. the scenario folder format)
    can say which file and line a value came from without parsing the message.

    Attributes
    ----------
    field : str or None
        The Scenario field at fault (a key of :data:`eqglb.fields.FIELDS`, or ``time``,
        ``home``, ``rtt_slo_ms``, ...), when one is.
    coordinate : dict dim -> int
        Position of the first offending value along each dimension it has
        (``{"time": 5, "datacenter": 0}``); empty when not about one value.
    fix : str or None
        How to fix it (also the end of the message).
    """

    def __init__(
        self,
        message: str = "",
        *,
        field: str | None = None,
        coordinate: Mapping[str, int] | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.coordinate: dict[str, int] = {k: int(v) for k, v in (coordinate or {}).items()}
        self.fix = fix


class ConfigError(InputError):
    """An invalid option or configuration; the message names it and the fix."""


class CLIError(ConfigError):
    """Bad command-line input; printed by :func:`eqglb.cli.main` as one red line (exit 2)."""


class SweepSpecError(ConfigError):
    """A sweep specification is invalid; the message names the file, the field and the fix."""


class ServiceConfigError(ConfigError):
    """Invalid service configuration (weights, addresses, policy), naming the option."""


class ReproductionError(ConfigError):
    """The reproduction cannot run (bad data folder, failed solve); the message says why."""


class SolveError(EqglbError, RuntimeError):
    """The solver found the problem infeasible/unbounded or failed; ``info`` holds the status."""

    def __init__(self, message: str, info: Any = None) -> None:
        super().__init__(message)
        self.info = info


class PolicyError(EqglbError, RuntimeError):
    """A policy returned a decision that is malformed or infeasible."""


class CausalityError(EqglbError, IndexError):
    """A policy asked for data of a slot after the current one."""


class ServiceError(EqglbError, RuntimeError):
    """The dispatch service cannot run."""


class StoreError(ServiceError, ValueError):
    """The database cannot be used (locked by another service, wrong schema, other config,
    read-only, damaged)."""


class StoreCorruptError(StoreError):
    """A stored row or the database file does not match its checksum or its history."""


class HAProxyRuntimeError(ServiceError):
    """HAProxy's runtime API refused a command (the message is HAProxy's answer)."""
