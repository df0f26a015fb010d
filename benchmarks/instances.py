"""Seeded benchmark instances of equitable GLB at the sizes of issue 5.

The generator lives in the package, :mod:`eqglb.synthetic` (also behind ``eqglb scenario
generate``); this module re-exports it so the benchmark scripts keep their imports.

Usage::

    from instances import make_instance
    sc = make_instance("paper", seed=0)
"""

from __future__ import annotations

from eqglb.synthetic import TIERS, Tier, make_instance, make_scenario

__all__ = ["TIERS", "Tier", "make_instance", "make_scenario"]
