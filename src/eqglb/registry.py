"""The one registry of policies by name.

Policy modules register their factories with :func:`register` when they are imported
(:mod:`eqglb.policies` the baselines and exact solvers, :mod:`eqglb.online` the online
policies, :mod:`eqglb.structured` the structured solvers). The registry imports those
modules itself on first lookup, so no module needs to import another to fill it and the
imports point one way: every policy module imports this one, this one imports none of
them at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

if TYPE_CHECKING:
    from eqglb.costs import Objective
    from eqglb.online.simulator import OnlinePolicy
    from eqglb.scenario import Dispatch

__all__ = [
    "DESCRIPTIONS",
    "REGISTRY",
    "OfflinePolicy",
    "Policy",
    "make_policy",
    "policy_names",
    "register",
    "state_class",
]

#: Modules whose import registers policies, in the order their names are listed.
_MODULES = ("eqglb.policies", "eqglb.online", "eqglb.structured")

_factories: dict[str, Callable[..., Any]] = {}
_descriptions: dict[str, str] = {}
#: class name -> class of the policies whose saved state can be restored
_classes: dict[str, type] = {}
_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for name in _MODULES:
        importlib.import_module(name)


class _View(Mapping[str, Any]):
    """Read-only view of a registry table that loads the policy modules on first use."""

    def __init__(self, table: dict[str, Any]) -> None:
        self._table = table

    def __getitem__(self, key: str) -> Any:
        _load()
        return self._table[key]

    def __iter__(self) -> Iterator[str]:
        _load()
        return iter(list(self._table))

    def __len__(self) -> int:
        _load()
        return len(self._table)

    def __repr__(self) -> str:
        _load()
        return f"{type(self).__name__}({list(self._table)})"


#: name -> factory(objective, **options) -> policy object
REGISTRY: Mapping[str, Callable[..., Any]] = _View(_factories)
#: name -> one-line description of what the policy minimises (units stated)
DESCRIPTIONS: Mapping[str, str] = _View(_descriptions)


@runtime_checkable
class OfflinePolicy(Protocol):
    """A policy that sees the whole horizon: ``plan(scenario) -> Dispatch``."""

    name: str

    def plan(self, scenario: Any) -> Dispatch: ...


#: What :func:`make_policy` returns: an offline policy (``plan``) or an online one
#: (``decide(view)``, see :class:`eqglb.online.simulator.OnlinePolicy`).
Policy = Union["OfflinePolicy", "OnlinePolicy"]  # noqa: UP007 (forward references)


def register(
    name: str, description: str, *, state_class: type | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding a policy factory ``f(objective, **options)`` to the registry.

    ``state_class``: the class the factory builds when its saved state (``state()``, with
    the class name under ``"policy"``) can be restored by :func:`state_class`."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        _factories[name] = f
        _descriptions[name] = description
        if state_class is not None:
            _classes[state_class.__name__] = state_class
        return f

    return deco


def state_class(kind: str) -> type:
    """The registered policy class named ``kind`` (KeyError listing the known ones)."""
    _load()
    try:
        return _classes[kind]
    except KeyError:
        raise KeyError(f"{kind!r}; known: {list(_classes)}") from None


def policy_names() -> list[str]:
    """Names of the registered policies."""
    _load()
    return list(_factories)


def make_policy(policy: str, objective: Objective | None = None, /, **options: Any) -> Policy:
    """Build the policy registered as ``policy`` (ValueError listing the names otherwise).

    ``options`` go to the factory (``model_rule``, ``tol``, ``name`` for the dispatch, ...).
    """
    _load()
    try:
        factory = _factories[policy]
    except KeyError:
        raise ValueError(f"unknown policy {policy!r}; choose from {policy_names()}") from None
    if objective is None:
        from eqglb.costs import Objective

        objective = Objective()
    return factory(objective, **options)
